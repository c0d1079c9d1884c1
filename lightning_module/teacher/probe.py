"""The accurate teacher: heads fitted on the frozen musicnn's window features, chosen on val.

For every head (genre, mood, AllMusic genre tags, audio features) and every candidate, a
standardised linear model is fitted on the train split and scored on val, clip by clip (the mean
of its windows' probabilities, as :class:`~lightning_module.inference.tagger.Tagger` aggregates):

- embedding (:class:`Embedding`): which pretrained taggers (``MSD_musicnn``, ``MTT_musicnn``, ...:
  each alone, and all of them concatenated) and what of each: ``musicnn`` (the 200-d penultimate
  layer) or ``musicnn_pooled`` (+ its time-pooled front/mid-end features, 1706-d); one for all
  heads, as they share one network; chosen first, every head fitted on clip means (fast), by
  the mean val score over heads;
- unit: one row per clip (its windows' mean features) or one row per window (every 3 s crop is a
  training example, labelled with its clip's label);
- regularisation: ``C`` of the logistic regressions, ``alpha`` of the ridge regressions.

The scaler and the linear model fold into one ``nn.Linear`` per head, so the teacher is an
ordinary checkpoint (:func:`teacher_checkpoint`): ``predict_clip`` and ``evaluate.py`` run it
like any other model. Test rows are never looked at here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from datamodules.schema import IGNORE_INDEX, TaskSpec
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


def candidate_embeddings(models: Sequence[str], kinds: Sequence[str]) -> list[Embedding]:
    """Every kind of each model alone and, given several, of all of them concatenated."""
    groups = [(m,) for m in models] + ([tuple(models)] if len(models) > 1 else [])
    return [Embedding(group, kind) for group in groups for kind in kinds]


@dataclass
class LinearHead:
    """``logits = x @ weight.T + bias`` on the raw (unstandardised) embedding.

    Shapes: weight (outputs, d), bias (outputs,)."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias


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


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    scale = x.std(0)
    return mean, np.where(scale > 1e-6, scale, 1.0)


def _fold(coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray):
    """Scaler + linear model on standardised x → one linear map on raw x."""
    weight = coef / scale
    return LinearHead(weight.astype(np.float32), (intercept - weight @ mean).astype(np.float32))


def _logistic(z: np.ndarray, y: np.ndarray, c: float):
    """scikit-learn's logistic regression at inverse strength ``c`` fitted on standardised ``z``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the grid's weakest C
        return model.fit(z, y)


def fit_classes(x: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> LinearHead:
    """Multinomial logistic regression; (n_classes, d) even when some class is absent."""
    mean, scale = _standardise(x)
    model = _logistic((x - mean) / scale, y, c)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, -30.0)  # a class never seen in training: probability ~0
    if len(model.classes_) == 2:  # sklearn keeps one row for two classes: logit of the second
        coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        intercept[model.classes_[0]] = 0.0
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return _fold(coef, intercept, mean, scale)


def fit_binary(x: np.ndarray, y: np.ndarray, c: float) -> LinearHead:
    """One logistic regression per column of ``y`` (0/1, NaN: not labelled for that column)."""
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        target = y[rows, j] > 0.5
        if target.all() or not target.any():  # one class only: its base rate
            rate = np.clip(target.mean() if rows.any() else 0.5, 1e-3, 1 - 1e-3)
            intercept[j] = np.log(rate / (1 - rate))
            continue
        model = _logistic(z[rows], target, c)
        coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
    return _fold(coef, intercept, mean, scale)


def fit_regression(x: np.ndarray, y: np.ndarray, alpha: float) -> LinearHead:
    """One ridge regression per column of ``y`` (z-scores, NaN where a row has no value)."""
    from sklearn.linear_model import Ridge

    mean, scale = _standardise(x)
    z = (x - mean) / scale
    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        if rows.sum() >= 2:
            model = Ridge(alpha=alpha).fit(z[rows], y[rows, j])
            coef[j], intercept[j] = model.coef_, model.intercept_
    return _fold(coef, intercept, mean, scale)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def clip_outputs(head: LinearHead, kind: str, windows: Sequence[np.ndarray]) -> np.ndarray:
    """Per clip, the mean over its windows of the head's probabilities (``classes``: softmax,
    ``binary``: sigmoid) or values (``regression``)."""
    activation = {"classes": _softmax, "binary": _sigmoid, "regression": lambda v: v}[kind]
    return np.stack([activation(head(w)).mean(0) for w in windows])


def score(kind: str, y: np.ndarray, out: np.ndarray) -> float:
    """Val score of one head: accuracy (classes), mean ROC-AUC over defined tags (binary), mean
    Pearson r over defined features (regression)."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    if kind == "classes":
        return float(accuracy_score(y, out.argmax(1)))
    values = []
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        truth = y[rows, j]
        if kind == "binary":
            if len(set((truth > 0.5).tolist())) == 2:
                values.append(roc_auc_score(truth > 0.5, out[rows, j]))
        elif rows.sum() > 2 and truth.std() > 0 and out[rows, j].std() > 0:
            values.append(np.corrcoef(truth, out[rows, j])[0, 1])
    return float(np.mean(values)) if values else float("nan")


METRICS = {"classes": "accuracy", "binary": "mean ROC-AUC", "regression": "mean r"}


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

    def window_outputs(
        self, clip: ClipFeatures, taggram: LinearHead | None, tag_model: str = ""
    ) -> dict:
        """Per window of one clip: probabilities (genre, mood, genre_tags, tags) and z-scored
        features. Shapes: (W, outputs) float32. ``taggram`` reads the penultimate layer of
        ``tag_model`` (default: the embedding's first model)."""
        x = self.embedding.of(clip)
        activations = {"genre": _softmax, "mood": _softmax, "genre_tags": _sigmoid}
        out = {
            name: activations.get(name, lambda v: v)(head(x)).astype(np.float32)
            for name, head in self.heads.items()
        }
        if taggram is not None:
            features = clip[tag_model or self.embedding.models[0]]
            out["tags"] = _sigmoid(taggram(features.penultimate.astype(np.float32)))
        return out


def fit_teacher(
    df: pd.DataFrame,
    features: Mapping[str, ClipFeatures],
    spec: TaskSpec,
    embeddings: Sequence[Embedding],
    refit: bool = False,
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

    Returns:
        The teacher and one row per (embedding, head, unit, strength) with its val score.
    """
    df = df.reset_index(drop=True)
    split = df["split"].to_numpy()
    taught = [f for f in spec.feature_names if f not in NOT_TAUGHT and df[f].notna().any()]
    targets = head_targets(df, spec, taught)
    table: list[dict[str, Any]] = []
    winner = embeddings[0]
    if len(embeddings) > 1:
        # Stage 1: every embedding with one row per clip (its windows' mean), ten times fewer
        # rows than the window unit: which taggers to read is decided here, cheaply.
        best = -np.inf
        for embedding in embeddings:
            teacher, rows = _fit_embedding(embedding, df, features, targets, split, ("clip",))
            table += [{**row, "stage": "embedding"} for row in rows]
            mean = float(np.nanmean([c.score for c in teacher.choices]))
            if mean > best:
                best, winner = mean, embedding
    # Stage 2: the chosen embedding, every unit and strength per head.
    teacher, rows = _fit_embedding(winner, df, features, targets, split, UNITS, refit)
    return teacher, table + [{**row, "stage": "heads"} for row in rows]


def _fit_embedding(
    embedding: Embedding,
    df: pd.DataFrame,
    features: Mapping[str, ClipFeatures],
    targets: dict,
    split: np.ndarray,
    units: Sequence[str],
    refit: bool = False,
) -> tuple[Teacher, list[dict[str, Any]]]:
    """Every head chosen on val for one embedding (and refitted on every split if ``refit``)."""
    windows = [embedding.of(features[t]) for t in df["track_id"]]
    heads: dict[str, LinearHead] = {}
    choices: list[HeadChoice] = []
    rows: list[dict[str, Any]] = []
    for name, (kind, y, names) in targets.items():
        choice, head = choose_head(name, kind, y, len(names), windows, split, units)
        if refit:
            head = refit_head(choice, kind, y, len(names), windows)
        heads[name], choices = head, [*choices, choice]
        rows += [
            {"embedding": embedding.name, "head": name, "candidate": k, "val": v}
            for k, v in choice.scores.items()
        ]
    return Teacher(embedding, heads, {k: v[2] for k, v in targets.items()}, choices), rows


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
