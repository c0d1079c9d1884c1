"""``TaggerSpec``: everything needed to rebuild and run a trained model, typed and versioned.

``MusicTagger`` saves plain hyperparameters in its checkpoint (Lightning's ``hyper_parameters``);
every consumer (network building, the inference ``Tagger``, ONNX export, callbacks, evaluation,
output formats) reads them through :meth:`TaggerSpec.from_hparams`, never by string keys. Older
checkpoints are brought up to date in one place, :func:`upgrade`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lightning_module.model.settings import LogMelSettings, LossWeights
from lightning_module.model.tasks import task as task_entry

#: Version of the hyperparameter layout written by this code. History:
#: 1: no ``format_version`` key; ``mel_norm``/``mel_scale``/``tag_names``/``channels_last`` may be
#:    missing (written before they existed).
#: 2: ``format_version`` recorded; every field of :class:`TaggerSpec` present.
#: 3: ``feature_sources`` / ``train_sources`` (what each feature was trained on) and the tempo
#:    head (``tempo_bins``, ``tempo_min``, ``tempo_max``); older checkpoints have neither (their
#:    provenance is unknown, and they have no tempo head).
#: 4: ``genre_tag_names`` (the multi-label AllMusic genre-tag head); older checkpoints have none.
#: 5: the key head (``key_names``, ``key_n_fft``, ``key_hidden``); older checkpoints have none.
#: 6: ``backbone_members`` (the ``ensemble`` backbone's members); older checkpoints have none.
#: 7: the log-mel settings and the loss weights as two nested groups, ``logmel``
#:    (:class:`LogMelSettings`) and ``loss_weights`` (:class:`LossWeights`, keyed by task name);
#:    older checkpoints have them as flat keys (``n_mels``, ``genre_weight``), or no weights at all.
FORMAT_VERSION = 7

#: Defaults of fields that version-1 checkpoints may lack: what the code did before they existed.
_V1_DEFAULTS: dict[str, Any] = {
    "mel_norm": None,
    "mel_scale": "htk",
    "tag_names": [],
    "channels_last": False,
    "crop_seconds": 3.0,
    "backbone": "resnet",
    "blocks": [1, 1, 1, 1],
}
#: Format 1-6 ``MusicTagger`` arguments of the loss weights → the task each weighs (format 7 keys
#: ``loss_weights`` by task name).
_V6_WEIGHT_ARGUMENTS: dict[str, str] = {
    "genre_weight": "genre",
    "mood_weight": "mood",
    "feature_weight": "features",
    "tag_weight": "tags",
    "genre_tag_weight": "genre_tags",
    "tempo_weight": "tempo",
    "key_weight": "key",
}
#: Format 1-6 flat log-mel keys: the same names as the fields of :class:`LogMelSettings`.
_LOGMEL_FIELDS = tuple(f.name for f in fields(LogMelSettings))


def _plain(group: Any) -> dict[str, Any]:
    """A group as a plain dict: a :class:`LogMelSettings` / :class:`LossWeights`, or its dict."""
    return group.to_dict() if hasattr(group, "to_dict") else dict(group or {})


def upgrade(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters of any checkpoint version, in the current layout (the one place that
    knows older checkpoints).

    Raises:
        ValueError: a checkpoint newer than this code.
    """
    hp = dict(hparams)
    version = int(hp.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format {version} is newer than this code understands ({FORMAT_VERSION})"
        )
    if version < 2:
        for key, value in _V1_DEFAULTS.items():
            if hp.get(key) is None:  # missing, or saved as None/null by that version
                hp[key] = value
    if version < 4 and hp.get("genre_tag_names") is None:
        hp["genre_tag_names"] = []  # written before the genre-tag head existed: no such head
    if version < 5 and hp.get("key_names") is None:
        hp["key_names"] = []  # written before the key head existed: no such head
    if version < 6 and hp.get("backbone_members") is None:
        hp["backbone_members"] = []  # written before ensembles existed: a single backbone
    if version < 7:  # flat keys into the two groups (missing ones: the group's defaults)
        flat_mel = {f: hp.pop(f) for f in _LOGMEL_FIELDS if f in hp}
        flat_weights = {t: hp.pop(a) for a, t in _V6_WEIGHT_ARGUMENTS.items() if a in hp}
        # A group already there wins: unversioned values in the current layout (MusicTagger's own
        # arguments) pass through here too, and the format-1 defaults above must not replace them.
        hp["logmel"] = {**flat_mel, **_plain(hp.get("logmel"))}
        hp["loss_weights"] = {**flat_weights, **_plain(hp.get("loss_weights"))}
    hp["format_version"] = FORMAT_VERSION
    return hp


def _tuple(value: Any) -> tuple:
    return tuple(value or ())


@dataclass(frozen=True)
class TaggerSpec:
    """What a trained tagger is: its labels, its input and its architecture.

    Task: ``genre_names`` / ``mood_names`` (classes; empty: no head), ``feature_names`` with the
    train-split ``feature_mean`` / ``feature_std`` (the head predicts z-scores; natural units:
    tempo in BPM, loudness in dB, the rest 0-1), ``tag_names`` (teacher tags, multi-label).
    Input: mono audio at ``sample_rate`` Hz, windows of ``crop_seconds``; the log-mel front-end's
    settings are the group ``logmel`` (:class:`LogMelSettings`: FFT, hop, bands, compression).
    Training: ``loss_weights`` (:class:`LossWeights`, one per task), what it was trained with
    (all 1 where a format-1-6 file did not record them; not compared by ``==``).
    Provenance: ``feature_sources`` (per feature: train rows by ``human`` / ``table`` /
    ``synthetic`` / ``teacher:<name>``) and ``train_sources`` (train rows by manifest source);
    empty for checkpoints older than format 3 (unknown). Tempo: a head of ``tempo_bins``
    log-spaced bins from ``tempo_min`` to ``tempo_max`` BPM (0: none). Genre tags:
    ``genre_tag_names``, the multi-label AllMusic genres of the genre-tag head (empty: no head;
    always empty before format 4). Key: ``key_names``, the 24 keys of the key head (empty: no
    head; always empty before format 5), which reads a spectrogram of ``key_n_fft`` samples and
    has ``key_hidden`` hidden channels (see ``model.key.KeyBranch``); ``key_sources`` says what
    it learned from (clips by provenance; ``dsp:krumhansl``: the DSP profiles, nothing learned).
    Architecture: ``backbone`` (a name in ``model.backbones.registry.BACKBONES``); for the
    ``ensemble`` backbone, ``backbone_members`` names its members in order (empty otherwise;
    always empty before format 6).
    """

    genre_names: tuple[str, ...] = ()
    mood_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()
    feature_mean: tuple[float, ...] = ()
    feature_std: tuple[float, ...] = ()
    tag_names: tuple[str, ...] = ()
    feature_sources: tuple[Mapping[str, int], ...] = ()
    train_sources: Mapping[str, int] = field(default_factory=dict)
    genre_tag_names: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    key_sources: Mapping[str, int] = field(default_factory=dict)
    key_n_fft: int = 8192
    key_hidden: int = 16
    tempo_bins: int = 0
    tempo_min: float = 30.0
    tempo_max: float = 300.0
    sample_rate: int = 16000
    crop_seconds: float = 3.0
    logmel: LogMelSettings = LogMelSettings()
    freq_mask: int = 12
    time_mask: int = 24
    n_masks: int = 2
    backbone: str = "resnet"
    backbone_members: tuple[str, ...] = ()
    width: int = 32
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    embed_dim: int = 256
    dropout: float = 0.2
    channels_last: bool = False
    # How it was trained, not what it computes: left out of ``==``, so a checkpoint and its ONNX
    # export are one model even where an older format wrote no weights into the ONNX metadata.
    loss_weights: LossWeights = field(default=LossWeights(), compare=False)
    format_version: int = field(default=FORMAT_VERSION)

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> TaggerSpec:
        """The spec of a checkpoint's (or ONNX file's) hyperparameters, of any format version."""
        hp = upgrade(hparams)
        values = {f.name: hp[f.name] for f in fields(cls) if f.name in hp}
        for name in (
            "genre_names",
            "mood_names",
            "feature_names",
            "tag_names",
            "genre_tag_names",
            "key_names",
            "backbone_members",
            "feature_mean",
            "feature_std",
            "blocks",
        ):
            if name in values:
                values[name] = _tuple(values[name])
        if "feature_sources" in values:
            values["feature_sources"] = tuple(
                dict(s or {}) for s in values["feature_sources"] or ()
            )
        if "train_sources" in values:
            values["train_sources"] = dict(values["train_sources"] or {})
        values["logmel"] = LogMelSettings.of(values.get("logmel"))
        values["loss_weights"] = LossWeights.of(values.get("loss_weights"))
        if "key_sources" in values:
            values["key_sources"] = dict(values["key_sources"] or {})
        if "feature_names" in values:
            n = len(values["feature_names"])
            values.setdefault("feature_mean", (0.0,) * n)
            values.setdefault("feature_std", (1.0,) * n)
            values["feature_mean"] = tuple(float(v) for v in values["feature_mean"] or (0.0,) * n)
            values["feature_std"] = tuple(float(v) for v in values["feature_std"] or (1.0,) * n)
        return cls(**values)

    def to_hparams(self) -> dict[str, Any]:
        """Plain values (lists, not tuples; the groups as nested dicts) as stored in checkpoints
        and ONNX metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    # -- what the model was trained on -----------------------------------------------------------
    @property
    def provenance_known(self) -> bool:
        """False for checkpoints older than format 3, which did not record it."""
        return len(self.feature_sources) == len(self.feature_names) and bool(self.feature_names)

    @property
    def trained_features(self) -> tuple[str, ...]:
        """Features the model had training values for (all, when that was not recorded)."""
        if not self.provenance_known:
            return self.feature_names
        return tuple(
            name
            for name, sources in zip(self.feature_names, self.feature_sources, strict=True)
            if sum(sources.values()) > 0
        )

    def feature_basis(self, name: str) -> str:
        """What feature ``name`` was trained on, in words: ``teacher:vibenet 540, human 90
        (630 real clips)``; ``synthetic 480 (no real clips)``; ``not recorded``."""
        if not self.provenance_known or name not in self.feature_names:
            return "not recorded (checkpoint predates provenance)"
        sources = self.feature_sources[self.feature_names.index(name)]
        if not sources:
            return "not trained"
        parts = ", ".join(f"{k} {v}" for k, v in sorted(sources.items(), key=lambda kv: -kv[1]))
        real = sum(v for k, v in sources.items() if k != "synthetic")
        return f"{parts} ({real} real clips)" if real else f"{parts} (no real clips)"

    @property
    def key_basis(self) -> str:
        """What the key head learned from, in words (``human 189 annotated keys``)."""
        if not self.key_names:
            return ""
        if not self.key_sources:
            return "not recorded"
        if "dsp:krumhansl" in self.key_sources:
            return "DSP: chroma + Krumhansl-Kessler profiles (nothing learned)"
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.key_sources.items()))
        return f"{parts} annotated keys"

    @property
    def synthetic_only(self) -> bool:
        """True when every training clip came from the synthetic demo set."""
        return bool(self.train_sources) and set(self.train_sources) == {"synthetic"}

    @property
    def window_samples(self) -> int:
        """Samples in one model window (``crop_seconds`` at ``sample_rate``)."""
        return int(round(self.crop_seconds * self.sample_rate))

    @property
    def tempo_bin_names(self) -> tuple[str, ...]:
        """One name per bin of the tempo head (``bin0`` ...; empty: no tempo head)."""
        return tuple(f"bin{i}" for i in range(self.tempo_bins))

    def names(self, task: str) -> tuple[str, ...]:
        """Label names of ``task`` (a name in ``model.tasks.TASKS``; empty: the model has no such
        head)."""
        return tuple(getattr(self, task_entry(task).labels))

    def has(self, task: str) -> bool:
        """Whether the model has the head ``task``."""
        return bool(self.names(task))
