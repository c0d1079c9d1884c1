"""The accurate teacher: heads fitted on the frozen musicnn's window features, chosen on val.

For every head (genre, mood, AllMusic genre tags, audio features) and every candidate, a
standardised linear model is fitted on the train split and scored on val, clip by clip (the mean
of its windows' probabilities, as :class:`~lightning_module.inference.tagger.Tagger` aggregates):

- embedding (:class:`Embedding`): which pretrained taggers (``MSD_musicnn``, ``MTT_musicnn``, ...:
  each alone, and all of them concatenated) and what of each: ``musicnn`` (the 200-d penultimate
  layer) or ``musicnn_pooled`` (+ its time-pooled front/mid-end features, 1706-d); chosen first,
  every head fitted on clip means (fast): one for all heads by the mean val score over heads, or
  (``per_head``) each head its own best, the network then reading the union of their taggers and
  each head zero on the columns it did not choose;
- unit: one row per clip (its windows' mean features) or one row per window (every 3 s crop is a
  training example, labelled with its clip's label);
- regularisation: ``C`` of the logistic regressions, ``alpha`` of the ridge regressions.

The scaler and the linear model fold into one ``nn.Linear`` per head, so the teacher is an
ordinary checkpoint (:func:`teacher_checkpoint`): ``predict_clip`` and ``evaluate.py`` run it
like any other model. Test rows are never looked at here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from datamodules.schema import IGNORE_INDEX, TaskSpec
from lightning_module.teacher.linear_heads import (
    METRICS,
    LinearHead,
    clip_outputs,
    fit_binary,
    fit_classes,
    fit_regression,
    score,
    sigmoid,
    softmax,
)
from lightning_module.teacher.window_features import WindowFeatures

EMBEDDINGS: tuple[str, ...] = ("musicnn", "musicnn_pooled")
#: One clip's window features from each pretrained tagger, by model name (the same windows).
ClipFeatures = Mapping[str, WindowFeatures]
UNITS: tuple[str, ...] = ("clip", "window")
CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
ALPHAS: tuple[float, ...] = (10.0, 100.0, 1000.0)
#: musicnn is no tempo estimator: the student's own tempo branch learns tempo from listeners and
#: the librosa teacher, so the teacher has no tempo output.
NOT_TAUGHT: tuple[str, ...] = ("tempo",)


@dataclass(frozen=True)
class Embedding:
    """What the teacher's heads read: the window features of ``models`` (pretrained taggers by
    name, in order), each as ``kind`` (one of :data:`EMBEDDINGS`), concatenated.

    ``name``: ``MSD_musicnn:musicnn_pooled``, ``MSD_musicnn+MTT_musicnn:musicnn_pooled``."""

    models: tuple[str, ...]
    kind: str

    @property
    def name(self) -> str:
        return f"{'+'.join(self.models)}:{self.kind}"

    def of(self, clip: ClipFeatures) -> np.ndarray:
        """(W, d) float32: the members' (W, d_i) features side by side."""
        return np.concatenate([clip[m].embedding(self.kind) for m in self.models], axis=1)

    def columns_in(self, union: Embedding, clip: ClipFeatures) -> np.ndarray:
        """Where this embedding's columns sit in ``union``'s (a superset of its models, of its
        kind or ``musicnn_pooled``, whose first 200 values per model are ``musicnn``'s).
        ``clip``: any clip, for each member's widths."""
        if self.kind != union.kind and union.kind != "musicnn_pooled":
            raise ValueError(f"{self.name} is not part of {union.name}")
        columns, offset = [], 0
        for model in union.models:
            if model in self.models:
                width = clip[model].embedding(self.kind).shape[1]
                columns.append(offset + np.arange(width))
            offset += clip[model].embedding(union.kind).shape[1]
        missing = set(self.models) - set(union.models)
        if missing:
            raise ValueError(f"{self.name} is not part of {union.name}")
        return np.concatenate(columns)


def union_embedding(embeddings: Sequence[Embedding], order: Sequence[str]) -> Embedding:
    """The smallest embedding holding every one of ``embeddings``: their taggers in ``order``,
    ``musicnn_pooled`` when any of them reads it."""
    models = {m for e in embeddings for m in e.models}
    pooled = any(e.kind == "musicnn_pooled" for e in embeddings)
    kind = "musicnn_pooled" if pooled else embeddings[0].kind
    return Embedding(tuple(m for m in order if m in models), kind)


def widen(head: LinearHead, columns: np.ndarray, width: int) -> LinearHead:
    """``head`` on a wider input: its weights at ``columns``, zero elsewhere. (outputs, width)."""
    weight = np.zeros((head.weight.shape[0], width), np.float32)
    weight[:, columns] = head.weight
    return LinearHead(weight, head.bias)


def candidate_embeddings(models: Sequence[str], kinds: Sequence[str]) -> list[Embedding]:
    """Every kind of each model alone and, given several, of all of them concatenated."""
    groups = [(m,) for m in models] + ([tuple(models)] if len(models) > 1 else [])
    return [Embedding(group, kind) for group in groups for kind in kinds]


@dataclass
class HeadChoice:
    """The winning candidate of one head and every candidate's val score."""

    head: str
    unit: str
    strength: float
    score: float
    metric: str
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Rows:
    """The clips one head is fitted on. ``x``: list of (W_i, d) window features per clip."""

    x: list[np.ndarray]
    y: np.ndarray  # (clips,) int classes, (clips, k) 0/1 tags or (clips, f) z-scores (NaN: none)

    def design(self, unit: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, d) inputs and their targets: clip means, or every window with its clip's."""
        if unit == "clip":
            return np.stack([w.mean(0) for w in self.x]), self.y
        counts = [len(w) for w in self.x]
        return np.concatenate(self.x), np.repeat(self.y, counts, axis=0)


def head_targets(df: pd.DataFrame, spec: TaskSpec, teacher_features: Sequence[str]) -> dict:
    """Per head: (kind, targets aligned with ``df``, output names)."""

    def classes(column: str, names: Sequence[str]) -> np.ndarray:
        lookup = {n: i for i, n in enumerate(names)}
        return np.array([lookup.get(v, IGNORE_INDEX) for v in df[column].fillna("")], np.int64)

    heads: dict[str, tuple[str, np.ndarray, list[str]]] = {}
    if len(spec.genre_names) > 1:
        heads["genre"] = ("classes", classes("genre", spec.genre_names), list(spec.genre_names))
    if len(spec.mood_names) > 1:
        heads["mood"] = ("classes", classes("mood", spec.mood_names), list(spec.mood_names))
    genre_tags = list(getattr(spec, "genre_tag_names", []) or [])
    if genre_tags:
        y = df[[f"genre_tag_{n}" for n in genre_tags]].to_numpy(np.float64)
        heads["genre_tags"] = ("binary", y, genre_tags)
    index = [spec.feature_names.index(f) for f in teacher_features]
    if index:
        raw = df[list(teacher_features)].to_numpy(np.float64)
        mean = np.asarray(spec.feature_mean)[index]
        std = np.asarray(spec.feature_std)[index]
        heads["features"] = ("regression", (raw - mean) / std, list(teacher_features))
    return heads


def _labelled(kind: str, y: np.ndarray) -> np.ndarray:
    if kind == "classes":
        return y != IGNORE_INDEX
    return np.isfinite(y).any(axis=1)


def _fit(kind: str, x: np.ndarray, y: np.ndarray, strength: float, n_out: int) -> LinearHead:
    if kind == "classes":
        return fit_classes(x, y, n_out, strength)
    if kind == "binary":
        return fit_binary(x, y, strength)
    return fit_regression(x, y, strength)


def choose_head(
    name: str,
    kind: str,
    y: np.ndarray,
    n_out: int,
    windows: Sequence[np.ndarray],
    split: np.ndarray,
    units: Sequence[str] = UNITS,
) -> tuple[HeadChoice, LinearHead]:
    """Fit every (unit, strength) on train rows, score on val rows, keep the best."""
    labelled = _labelled(kind, y)
    train = Rows(
        [windows[i] for i in np.flatnonzero(labelled & (split == "train"))],
        y[labelled & (split == "train")],
    )
    val_rows = np.flatnonzero(labelled & (split == "val"))
    strengths = ALPHAS if kind == "regression" else CS
    best: tuple[float, str, float, LinearHead] | None = None
    scores: dict[str, float] = {}
    for unit in units:
        x, target = train.design(unit)
        for strength in strengths:
            head = _fit(kind, x, target, strength, n_out)
            value = float("nan")
            if len(val_rows):
                out = clip_outputs(head, kind, [windows[i] for i in val_rows])
                value = score(kind, y[val_rows], out)
            scores[f"{unit} {strength:g}"] = value
            if best is None or (np.isfinite(value) and not value <= best[0]):
                best = (value, unit, strength, head)
    assert best is not None
    value, unit, strength, head = best
    return HeadChoice(name, unit, strength, value, METRICS[kind], scores), head


def refit_head(
    choice: HeadChoice, kind: str, y: np.ndarray, n_out: int, windows: Sequence[np.ndarray]
) -> LinearHead:
    """The chosen candidate fitted again on every labelled row (train + val + test)."""
    labelled = np.flatnonzero(_labelled(kind, y))
    rows = Rows([windows[i] for i in labelled], y[labelled])
    x, target = rows.design(choice.unit)
    return _fit(kind, x, target, choice.strength, n_out)


@dataclass
class Teacher:
    """A fitted teacher: its embedding, heads (by head name) and the choices that made it."""

    embedding: Embedding
    heads: dict[str, LinearHead]
    names: dict[str, list[str]]
    choices: list[HeadChoice]
    #: What each head was fitted on (a part of ``embedding``; all of it unless ``per_head``).
    head_embeddings: dict[str, Embedding] = field(default_factory=dict)

    def window_outputs(
        self, clip: ClipFeatures, taggram: LinearHead | None, tag_model: str = ""
    ) -> dict:
        """Per window of one clip: probabilities (genre, mood, genre_tags, tags) and z-scored
        features. Shapes: (W, outputs) float32. ``taggram`` reads the penultimate layer of
        ``tag_model`` (default: the embedding's first model)."""
        x = self.embedding.of(clip)
        activations = {"genre": softmax, "mood": softmax, "genre_tags": sigmoid}
        out = {
            name: activations.get(name, lambda v: v)(head(x)).astype(np.float32)
            for name, head in self.heads.items()
        }
        if taggram is not None:
            features = clip[tag_model or self.embedding.models[0]]
            out["tags"] = sigmoid(taggram(features.penultimate.astype(np.float32)))
        return out


def fit_teacher(
    df: pd.DataFrame,
    features: Mapping[str, ClipFeatures],
    spec: TaskSpec,
    embeddings: Sequence[Embedding],
    refit: bool = False,
    per_head: bool = False,
) -> tuple[Teacher, list[dict[str, Any]]]:
    """Choose and fit the teacher (see the module doc).

    Args:
        df: manifest rows with features (``track_id`` in ``features``), every split.
        features: per track id, its window features by pretrained model.
        spec: the task (label names, feature statistics): the student's own, so both agree.
        embeddings: candidates (:func:`candidate_embeddings`); the one with the best mean val
            score over heads, each fitted on clip means, wins; then its heads are chosen among
            every unit and strength.
        refit: after choosing on val, fit the chosen heads again on train + val + test.
        per_head: each head reads the candidate with its own best val score; the teacher's
            embedding is their union (:func:`union_embedding`).

    Returns:
        The teacher and one row per (embedding, head, unit, strength) with its val score.
    """
    df = df.reset_index(drop=True)
    split = df["split"].to_numpy()
    taught = [f for f in spec.feature_names if f not in NOT_TAUGHT and df[f].notna().any()]
    targets = head_targets(df, spec, taught)
    table: list[dict[str, Any]] = []
    chosen = dict.fromkeys(targets, embeddings[0])
    windows_of: dict[Embedding, list[np.ndarray]] = {}  # (W, d) per clip, built once per embedding
    if len(embeddings) > 1:
        # Stage 1: every embedding with one row per clip (its windows' mean), ten times fewer
        # rows than the window unit: which taggers to read is decided here, cheaply.
        scores: dict[Embedding, dict[str, float]] = {}
        for embedding in embeddings:
            windows_of[embedding] = [embedding.of(features[t]) for t in df["track_id"]]
            for name in targets:
                choice, _, rows = _fit_head(
                    name, targets[name], embedding, windows_of[embedding], split, ("clip",)
                )
                table += [{**row, "stage": "embedding"} for row in rows]
                scores.setdefault(embedding, {})[name] = choice.score

        def rank(value: float) -> float:
            return value if np.isfinite(value) else -np.inf

        shared = max(embeddings, key=lambda e: rank(np.nanmean(list(scores[e].values()))))
        chosen = dict.fromkeys(targets, shared)
        if per_head:
            chosen = {h: max(embeddings, key=lambda e, h=h: rank(scores[e][h])) for h in targets}
    # Stage 2: each head on its chosen embedding, every unit and strength.
    order = [m for e in embeddings for m in e.models]
    union = union_embedding(list(chosen.values()), list(dict.fromkeys(order)))
    some_clip = features[df["track_id"].iloc[0]]
    width = union.of(some_clip).shape[1]
    heads: dict[str, LinearHead] = {}
    choices: list[HeadChoice] = []
    # Stage 1's windows are reused; those of the candidates no head chose are let go.
    windows_of = {e: w for e, w in windows_of.items() if e in chosen.values()}
    for name, embedding in chosen.items():
        if embedding not in windows_of:
            windows_of[embedding] = [embedding.of(features[t]) for t in df["track_id"]]
        choice, head, rows = _fit_head(
            name, targets[name], embedding, windows_of[embedding], split, UNITS, refit
        )
        heads[name] = widen(head, embedding.columns_in(union, some_clip), width)
        choices.append(choice)
        table += [{**row, "stage": "heads"} for row in rows]
    names = {k: v[2] for k, v in targets.items()}
    return Teacher(union, heads, names, choices, dict(chosen)), table


def _fit_head(
    name: str,
    target: tuple[str, np.ndarray, list[str]],
    embedding: Embedding,
    windows: Sequence[np.ndarray],
    split: np.ndarray,
    units: Sequence[str],
    refit: bool = False,
) -> tuple[HeadChoice, LinearHead, list[dict[str, Any]]]:
    """One head chosen on val for one embedding (and refitted on every split if ``refit``)."""
    kind, y, names = target
    choice, head = choose_head(name, kind, y, len(names), windows, split, units)
    if refit:
        head = refit_head(choice, kind, y, len(names), windows)
    rows = [
        {"embedding": embedding.name, "head": name, "candidate": k, "val": v}
        for k, v in choice.scores.items()
    ]
    return choice, head, rows


def member_backbone(model: str, kind: str) -> str:
    """The registered backbone of pretrained ``model`` read as ``kind``: the VGG taggers'
    ``musicnn_vgg[_pooled]``, the others' ``kind``."""
    return kind.replace("musicnn", "musicnn_vgg", 1) if "vgg" in model.lower() else kind


def teacher_checkpoint(
    teacher: Teacher,
    spec: TaskSpec,
    weights: Mapping[str, Mapping[str, Any]],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """The teacher as a checkpoint ``load_network`` (``predict_clip``, ``evaluate.py``) opens:
    one pretrained backbone, or an ``ensemble`` of them when its embedding reads several.

    Args:
        teacher: the fitted heads.
        spec: the task the heads were fitted for (names, feature statistics, provenance).
        weights: by model name, the converted files' contents (``state_dict``, ``tag_names``);
            the embedding's first model's tags are the checkpoint's.
        summary: what made it (choices, counts), stored beside the weights.
    """
    from lightning_module.model.backbones.musicnn import (
        MUSICNN_FRONTEND,
        MUSICNN_SAMPLE_RATE,
        tag_slug,
    )
    from lightning_module.model.network import build_network
    from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec

    models = teacher.embedding.models
    members = [member_backbone(m, teacher.embedding.kind) for m in models]
    features = teacher.names.get("features", [])
    index = [spec.feature_names.index(f) for f in features]
    hparams = {
        **TaggerSpec().to_hparams(),
        "genre_names": teacher.names.get("genre", []),
        "mood_names": teacher.names.get("mood", []),
        "genre_tag_names": teacher.names.get("genre_tags", []),
        "feature_names": features,
        "feature_mean": [spec.feature_mean[i] for i in index],
        "feature_std": [spec.feature_std[i] for i in index],
        "feature_sources": [spec.feature_sources[i] for i in index],
        "train_sources": dict(spec.train_sources),
        "tag_names": [tag_slug(t) for t in weights[models[0]].get("tag_names") or []],
        "sample_rate": MUSICNN_SAMPLE_RATE,
        "logmel": MUSICNN_FRONTEND.to_dict(),
        "crop_seconds": 3.0,
        "backbone": members[0] if len(members) == 1 else "ensemble",
        "backbone_members": members if len(members) > 1 else [],
        "embed_dim": 200,
        "dropout": 0.5,
        "freq_mask": 0,
        "time_mask": 0,
        "tempo_bins": 0,
        "format_version": FORMAT_VERSION,
    }
    model_spec = TaggerSpec.from_hparams(hparams)
    net = build_network(model_spec)
    parts = net.backbone.members if len(members) > 1 else [net.backbone]
    for part, model in zip(parts, models, strict=True):
        part.load_state_dict(weights[model]["state_dict"])
    with torch.no_grad():
        for name, head in teacher.heads.items():
            layer = net.heads.heads[name]
            layer.weight.copy_(torch.from_numpy(head.weight))
            layer.bias.copy_(torch.from_numpy(head.bias))
        if "tags" in net.heads.heads:  # the teacher's own taggram reads the penultimate layer only
            layer = net.heads.heads["tags"]
            layer.weight.zero_()
            layer.weight[:, : net.backbone.taggram_dim] = net.backbone.tag_head.weight
            layer.bias.copy_(net.backbone.tag_head.bias)
    return {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": model_spec.to_hparams(),
        "teacher": dict(summary),
    }
