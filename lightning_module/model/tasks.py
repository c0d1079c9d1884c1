"""The model's tasks, one entry each: what every consumer iterates instead of spelling heads out.

A task states its name (the network's output key, the ONNX output name, the JSON key and the CSV
column prefix), its kind, where its labels live in the :class:`TaggerSpec`, what its head reads,
its loss and metrics, its manifest columns and batch keys, and how it is shown. The network,
losses, metrics, the inference ``Tagger``, the output formats, ONNX export and evaluation loop
over :data:`TASKS`; adding a head is one entry here plus its module (and a decoder when its
output is more than ranked labels). Plain values only: the runtime without torch imports this.

Kinds:
    ``single_label``: one class per clip; softmax; cross-entropy; accuracy and macro-F1.
    ``multi_label``: any number of labels; sigmoid; binary cross-entropy; ROC-AUC per label.
    ``regression``: standardised values; mean squared error; R² and Pearson r.
    ``binned``: a value decoded from a distribution over bins (tempo); soft cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

from datamodules.schema import FEATURES

KINDS = ("single_label", "multi_label", "regression", "binned")
#: What a head reads: the clip embedding (a linear layer), the log-mel, or the waveform.
INPUTS = ("embedding", "mel", "wave")


@dataclass(frozen=True)
class Task:
    """One head of the model.

    Attributes:
        name: output key everywhere (network dict, ONNX output, JSON key, CSV prefix).
        kind: one of :data:`KINDS`.
        labels: the :class:`TaggerSpec` field holding its label names (empty there: no head).
        input: what the head reads (:data:`INPUTS`); not ``embedding`` means a branch module
            built by ``model.network.BRANCHES[name]``.
        loss: the loss function's name in ``model.losses.LOSSES``; ``loss_name`` what it is
            logged as. Its weight is the field ``name`` of ``model.settings.LossWeights``.
        metrics: what training and evaluation report for it (names of ``training.metrics``).
        manifest_columns: manifest columns its targets come from (``<prefix>*``: a family).
        target, mask: the batch keys of its targets and of the mask of rows/entries that have
            one (``None``: missing targets are ``IGNORE_INDEX``).
        top_column: CSV rows carry ``<name>`` and ``<name>_probability`` (the top label).
        class_prefix: per-label probability columns ``<prefix>:<label>`` (``None``: none).
        text: its label in the terminal summary (``None``: not listed there).
        decoder: name of the decoder in ``inference.decoders.DECODERS`` that turns its averaged
            output into named values (``key``: tonic, mode, camelot, confidence), or ``None``.
        tag_fields: the file-tag fields ``write_tags`` fills from it.
        soft_target: the teacher's soft-target batch key used by distillation, if any.
    """

    name: str
    kind: str
    labels: str
    input: str = "embedding"
    loss: str = "masked_cross_entropy"
    loss_name: str = ""
    metrics: tuple[str, ...] = ()
    manifest_columns: tuple[str, ...] = ()
    target: str = ""
    mask: str | None = None
    top_column: bool = False
    class_prefix: str | None = None
    text: str | None = None
    decoder: str | None = None
    tag_fields: tuple[str, ...] = ()
    soft_target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.input not in INPUTS:
            raise ValueError(f"task {self.name}: input must be one of {INPUTS}")

    @property
    def activation(self) -> str:
        """``softmax`` (single-label, binned), ``sigmoid`` (multi-label) or ``none``."""
        return {"single_label": "softmax", "binned": "softmax", "multi_label": "sigmoid"}.get(
            self.kind, "none"
        )


#: Every head, in output order (the order of ONNX outputs and CSV column groups).
TASKS: list[Task] = [
    Task(
        "genre",
        "single_label",
        labels="genre_names",
        loss_name="genre_loss",
        metrics=("acc", "f1"),
        manifest_columns=("genre",),
        target="genre",
        top_column=True,
        class_prefix="genre",
        text="genre",
        tag_fields=("genre",),
        soft_target="soft_genre",
    ),
    Task(
        "mood",
        "single_label",
        labels="mood_names",
        loss_name="mood_loss",
        metrics=("acc", "f1"),
        manifest_columns=("mood",),
        target="mood",
        top_column=True,
        class_prefix="mood",
        text="mood",
        tag_fields=("mood",),
        soft_target="soft_mood",
    ),
    Task(
        "features",
        "regression",
        labels="feature_names",
        loss="masked_mse",
        loss_name="feature_loss",
        metrics=("r2", "r"),
        manifest_columns=FEATURES,
        target="features",
        mask="feature_mask",
        tag_fields=("bpm", "features"),
        soft_target="soft_features",
    ),
    Task(
        "tags",
        "multi_label",
        labels="tag_names",
        loss="masked_soft_bce",
        loss_name="tag_loss",
        metrics=("auroc",),
        manifest_columns=("tag_*",),
        target="tags",
        mask="tag_mask",
        class_prefix="tag",
        text="tags",
        soft_target="soft_tags",
    ),
    Task(
        "genre_tags",
        "multi_label",
        labels="genre_tag_names",
        loss="masked_genre_tag_bce",
        loss_name="genre_tag_loss",
        metrics=("auroc", "ap"),
        manifest_columns=("genre_tag_*",),
        target="genre_tags",
        mask="genre_tag_mask",
        text="genre tags",
        tag_fields=("genre_tags",),
        soft_target="soft_genre_tags",
    ),
    Task(
        "tempo",
        "binned",
        labels="tempo_bin_names",
        input="mel",
        loss="tempo_soft_cross_entropy",
        loss_name="tempo_loss",
        metrics=("tempo_acc1", "tempo_acc2"),
        manifest_columns=("tempo",),
        target="features",
        mask="feature_mask",
        tag_fields=("bpm",),
    ),
    Task(
        "key",
        "single_label",
        labels="key_names",
        input="wave",
        loss_name="key_loss",
        metrics=("acc", "mirex"),
        manifest_columns=("key", "mode"),
        target="key",
        decoder="key",
        text="key",
        tag_fields=("key",),
    ),
]

#: Outputs every network has beside its heads.
EXTRA_OUTPUTS: tuple[str, ...] = ("embedding",)


def task(name: str) -> Task:
    """The entry called ``name``.

    Raises:
        KeyError: no such task (the message lists the known ones).
    """
    for entry in TASKS:
        if entry.name == name:
            return entry
    raise KeyError(f"unknown task {name!r}; known: {', '.join(t.name for t in TASKS)}")


def output_names() -> tuple[str, ...]:
    """Every output a network may have, in order: each task, then the embedding."""
    return (*(t.name for t in TASKS), *EXTRA_OUTPUTS)


def loss_names() -> tuple[str, ...]:
    """Logged loss names: the weighted total, each task's, then distillation's."""
    return ("loss", *(t.loss_name for t in TASKS), "distill_loss")
