"""Evaluate a checkpoint on a manifest the way users run it, next to simple baselines.

Every clip is decoded once (through the audio cache, shared with training) and tagged by
:class:`~lightning_module.inference.tagger.Tagger` on the whole clip: windowed, windows averaged,
exactly what ``predict_clip`` returns. The same waveforms feed a handcrafted baseline (mean and std
of MFCCs and log-mel bands per clip → logistic regression fitted on the manifest's train split) and
the majority / chance baselines. Metrics are computed per ``source`` and written as ``report.json``,
``report.md`` and confusion-matrix PNGs.

Labels are matched by name: a ground-truth label the model does not know is counted and reported
under ``unknown_labels`` and left out of that task's scores. A model with a genre-tag head gets
per-tag ROC-AUC and PR-AUC (with positives counted) on the rows that have genre tags
(``genre_tag_<name>`` columns), and their means over the tags defined there. A model with a key
head gets key accuracy and the MIREX weighted score against the ``key``/``mode`` columns and
against the DSP key teacher (``evaluation.key_scores``); tempo Acc1/Acc2 are among the features'.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchaudio

from datamodules.analysis.key import parse_key
from datamodules.loading.cache import AudioCache, build_cache
from datamodules.manifest import (
    GENRE_TAG_PREFIX,
    GROUND_TRUTH,
    TEACHER_PREFIX,
    feature_provenance,
    read_manifest,
)
from lightning_module.evaluation.key_scores import KeyTeacher, key_lines, key_report, key_truth
from lightning_module.inference.tagger import Tagger, load_checkpoint

log = logging.getLogger(__name__)

TASKS = ("genre", "mood")
#: Feature predicted by the model → manifest column with a ±1 sign to rank it against.
SIGN_TARGETS = {"energy": ("arousal_sign", "arousal"), "valence": ("valence_sign", "valence")}
#: Regularisation strengths tried for the baseline, chosen on the val split (never on test).
BASELINE_CS = (0.01, 0.1, 1.0, 10.0)
ALL = "all"


# -- handcrafted baseline -------------------------------------------------------------------------
class ClipStatistics(torch.nn.Module):
    """Mean and std over time of 20 MFCCs and 64 log-mel bands: a 168-d clip descriptor.

    Shapes: (samples,) float at ``sample_rate`` → (168,).
    """

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 20, n_mels: int = 64) -> None:
        super().__init__()
        melkwargs = {"n_fft": 1024, "hop_length": 512, "n_mels": n_mels}
        self.mfcc = torchaudio.transforms.MFCC(sample_rate, n_mfcc=n_mfcc, melkwargs=melkwargs)
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, **melkwargs)

    @torch.inference_mode()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mfcc = self.mfcc(wave)
        logmel = torch.log10(self.mel(wave) + 1e-6)
        return torch.cat([mfcc.mean(-1), mfcc.std(-1), logmel.mean(-1), logmel.std(-1)])


def fit_baseline(
    x_train: np.ndarray, y_train: Sequence, x_val: np.ndarray | None, y_val: Sequence | None
) -> tuple[Any, float]:
    """Standardise + logistic regression; C picked by val macro-F1 (first C without val data)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    best_c, best_score = 1.0, -1.0
    if x_val is not None and y_val is not None and len(set(y_val)) > 1:
        for c in BASELINE_CS:
            score = f1_score(y_val, model(c).fit(x_train, y_train).predict(x_val), average="macro")
            if score > best_score:
                best_c, best_score = c, score
    return model(best_c).fit(x_train, y_train), best_c


# -- metrics --------------------------------------------------------------------------------------
def classification_scores(
    truth: Sequence[str], probs: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of ``probs`` (n, len(names)) against ``truth`` (names).

    ``accuracy``/``macro_f1`` choose among the labels this subset has (e.g. GTZAN's 3 genres out
    of a model's 5: the closed-set question "which of these?"); ``accuracy_open`` chooses among
    every label of the model.
    """
    from sklearn.metrics import accuracy_score, f1_score

    names = list(names)
    present = sorted(set(truth))
    columns = [names.index(n) for n in present]
    closed = [present[i] for i in probs[:, columns].argmax(1)]
    opened = [names[i] for i in probs.argmax(1)]
    return {
        "n": len(truth),
        "labels": present,
        "accuracy": float(accuracy_score(truth, closed)),
        "macro_f1": float(f1_score(truth, closed, labels=present, average="macro")),
        "accuracy_open": float(accuracy_score(truth, opened)),
        "macro_f1_open": float(f1_score(truth, opened, labels=present, average="macro")),
    }


def majority_scores(truth: Sequence[str], train_labels: Sequence[str]) -> dict[str, Any]:
    """Always answer the most common train label of this subset's label set; and uniform chance."""
    from sklearn.metrics import f1_score

    present = sorted(set(truth))
    counts = Counter(label for label in train_labels if label in present)
    majority = counts.most_common(1)[0][0] if counts else present[0]
    guess = [majority] * len(truth)
    return {
        "majority_label": majority,
        "accuracy": float(np.mean([t == majority for t in truth])),
        "macro_f1": float(f1_score(truth, guess, labels=present, average="macro")),
        "chance_accuracy": 1.0 / len(present),
    }


def regression_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson r, Spearman ρ, R² and mean absolute error (None when undefined: fewer than 3
    values or constant targets); rows where either side is missing are left out."""
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    both = np.isfinite(truth) & np.isfinite(pred)
    truth, pred = truth[both], pred[both]
    if len(truth) < 3 or np.std(truth) == 0 or np.std(pred) == 0:
        return {"n": len(truth), "pearson_r": None, "spearman": None, "r2": None, "mae": None}
    return {
        "n": len(truth),
        "pearson_r": float(np.corrcoef(truth, pred)[0, 1]),
        "spearman": float(spearmanr(truth, pred).statistic),
        "r2": float(r2_score(truth, pred)),
        "mae": float(np.abs(truth - pred).mean()),
    }


def tempo_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Tempo Acc1 (within 4 %) and Acc2 (also of x2, x3, 1/2, 1/3), over rows with both."""
    from datamodules.analysis.tempo import tempo_accuracy

    both = np.isfinite(truth) & np.isfinite(pred) & (truth > 0)
    if not both.any():
        return {"n": 0, "acc1": None, "acc2": None}
    acc1, acc2 = tempo_accuracy(pred[both], truth[both])
    return {"n": int(both.sum()), "acc1": float(acc1.mean()), "acc2": float(acc2.mean())}


def feature_scores(truth: np.ndarray, pred: np.ndarray, name: str) -> dict[str, Any]:
    """:func:`regression_scores`, plus :func:`tempo_scores` for the tempo."""
    scores = regression_scores(truth, pred)
    if name == "tempo":
        scores.update({k: v for k, v in tempo_scores(truth, pred).items() if k != "n"})
    return scores


def auc(signs: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` against ``signs`` > 0; None with a single class."""
    from sklearn.metrics import roc_auc_score

    positive = signs > 0
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, scores))


def genre_tag_scores(truth: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """ROC-AUC and PR-AUC (average precision) of one genre tag's ``probs`` against 0/1 ``truth``
    (NaN rows left out), with the counts; the scores are None when the rows have no positive or
    no negative. ``prevalence`` (positives / n) is the PR-AUC of a random ranking."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    has = np.isfinite(truth) & np.isfinite(probs)
    positive = truth[has] >= 0.5
    n, positives = int(has.sum()), int(positive.sum())
    result: dict[str, Any] = {"n": n, "positives": positives, "roc_auc": None, "pr_auc": None}
    result["prevalence"] = positives / n if n else None
    if 0 < positives < n:
        result["roc_auc"] = float(roc_auc_score(positive, probs[has]))
        result["pr_auc"] = float(average_precision_score(positive, probs[has]))
    return result


def sign_targets(df: pd.DataFrame, feature: str) -> pd.Series:
    """The ±1 sign a feature is ranked against: a sign column if present, else a two-valued target.

    4Q's arousal/valence signs arrive either as their own column (``arousal_sign``/``arousal``) or
    already mapped to weak 0/1 ``energy``/``valence`` targets by the importer; both mean the same.
    Rows whose value a teacher filled in are not signs and are left out.
    """
    for column in SIGN_TARGETS[feature]:
        if column in df:
            values = pd.to_numeric(df[column], errors="coerce")
            if values.dropna().isin([-1.0, 1.0]).all():
                return np.sign(values)
    if feature in df:
        values = pd.to_numeric(df[feature], errors="coerce")
        # Only labels, never a teacher's continuous values filled in beside them.
        teacher = feature_provenance(df, feature).fillna("").str.startswith("teacher:")
        values = values.where(~teacher.to_numpy(bool))
        distinct = values.dropna().unique()
        if len(distinct) == 2:
            return pd.Series(
                np.where(values.isna(), np.nan, np.where(values > distinct.mean(), 1.0, -1.0)),
                index=df.index,
            )
    return pd.Series(np.nan, index=df.index)


# -- the evaluation -------------------------------------------------------------------------------
@dataclass
class Predictions:
    """Per clip of the evaluated rows: the CNN's averaged outputs and baseline descriptors."""

    rows: pd.DataFrame
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # task → (n, n_names)
    features: np.ndarray | None = None  # (n, n_features) natural units
    descriptors: np.ndarray | None = None  # (n, 168)
    keys: np.ndarray | None = None  # (n,) the key head's key index (-1: no key head)
    teacher_keys: np.ndarray | None = None  # (n,) the DSP key teacher's key index


def tag_rows(
    tagger: Tagger, rows: pd.DataFrame, cache: AudioCache, stats: ClipStatistics | None
) -> Predictions:
    """Tag every row with the inference path (whole clip, windows averaged)."""
    from tqdm.auto import tqdm

    spec = tagger.spec
    probs: dict[str, list] = {t: [] for t in TASKS if spec.names(t)}
    if spec.genre_tag_names:  # the multi-label genre-tag head: one probability per tag
        probs["genre_tags"] = []
    features, descriptors, keys, teacher_keys = [], [], [], []
    teacher = KeyTeacher(spec.sample_rate) if spec.key_names else None
    for track_id in tqdm(rows["track_id"], desc="tagging", unit="clip", leave=False):
        wave = torch.from_numpy(cache.read(track_id))
        prediction = tagger.predict_waveform(wave, path=track_id)
        for task in probs:
            ranked = dict(getattr(prediction, task))
            probs[task].append([ranked[name] for name in spec.names(task)])
        features.append([prediction.features.get(n, np.nan) for n in spec.feature_names])
        if stats is not None:
            descriptors.append(stats(wave).numpy())
        if teacher is not None and "key" in prediction.decoded:
            key = f"{prediction.decoded['key']} {prediction.decoded['mode']}"
            keys.append(parse_key(key))
            teacher_keys.append(teacher(wave))
    return Predictions(
        rows=rows,
        probs={t: np.asarray(v, dtype=np.float64).reshape(len(rows), -1) for t, v in probs.items()},
        features=np.asarray(features, dtype=np.float64).reshape(len(rows), -1),
        descriptors=np.asarray(descriptors) if stats is not None else None,
        keys=np.asarray(keys, dtype=int) if teacher is not None else None,
        teacher_keys=np.asarray(teacher_keys, dtype=int) if teacher is not None else None,
    )


def describe_rows(rows: pd.DataFrame, cache: AudioCache, stats: ClipStatistics) -> np.ndarray:
    """Baseline descriptors (n, 168) of cached clips."""
    return np.stack([stats(torch.from_numpy(cache.read(t))).numpy() for t in rows["track_id"]])


class Evaluator:
    """Evaluate ``checkpoint`` on ``manifest`` rows of ``split`` (``all``: every row).

    Args:
        checkpoint: a MusicTagger checkpoint.
        manifest: any manifest; its train (and val) split fits the handcrafted baseline.
        split: ``test``, ``val``, ``train`` or ``all``.
        cache_dir: audio cache; default: the training run's (from the checkpoint), else data/cache.
        baseline: fit and report the handcrafted baseline (needs train rows in the manifest).
        device: where the CNN runs.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        manifest: str | os.PathLike,
        split: str = "test",
        cache_dir: str | os.PathLike | None = None,
        baseline: bool = True,
        device: str = "cpu",
    ) -> None:
        self.checkpoint = Path(checkpoint)
        self.manifest_path = Path(manifest)
        self.split = split
        raw = load_checkpoint(self.checkpoint)
        self.data_hparams = dict(raw.get("datamodule_hyper_parameters") or {})
        self.tagger = Tagger.from_checkpoint(self.checkpoint, device=device)
        self.spec = self.tagger.spec
        self.cache_dir = Path(
            cache_dir
            or self.data_hparams.get("cache_dir")
            or Path(self.data_hparams.get("data_dir", "data")) / "cache"
        )
        self.manifest = read_manifest(self.manifest_path, check_audio=False)
        self.baseline = baseline

    def _cache(self, rows: pd.DataFrame) -> AudioCache:
        return build_cache(
            rows,
            self.cache_dir,
            self.spec.sample_rate,
            max_seconds=self.data_hparams.get("max_clip_seconds", 600.0),
        )

    def run(self, command: str = "") -> dict[str, Any]:
        df = self.manifest
        eval_rows = df if self.split == ALL else df[df["split"] == self.split]
        if eval_rows.empty:
            raise ValueError(f"{self.manifest_path}: no rows in split {self.split!r}")
        fit_rows = df[df["split"].isin(["train", "val"])] if self.split != ALL else df.iloc[:0]
        use_baseline = self.baseline and (fit_rows["split"] == "train").any()
        # One cache over everything we read: the training run's cache when this is its manifest.
        cache = self._cache(df if use_baseline else eval_rows)
        decoded = eval_rows["track_id"].isin(cache.offsets.keys())
        skipped = eval_rows[~decoded]
        eval_rows = eval_rows[decoded].reset_index(drop=True)
        stats = ClipStatistics(self.spec.sample_rate) if use_baseline else None
        preds = tag_rows(self.tagger, eval_rows, cache, stats)
        baseline_models: dict[str, Any] = {}
        if use_baseline:
            fit_rows = fit_rows[fit_rows["track_id"].isin(cache.offsets.keys())].reset_index(
                drop=True
            )
            baseline_models = self._fit_baselines(fit_rows, describe_rows(fit_rows, cache, stats))
        report = self._report(preds, baseline_models, fit_rows, command)
        report["counts"]["not_decodable"] = {
            str(r.track_id): _reason(cache, r.track_id) for r in skipped.itertuples()
        }
        return report

    # -- baselines ---------------------------------------------------------------------------------
    def _fit_baselines(self, rows: pd.DataFrame, x: np.ndarray) -> dict[str, Any]:
        models: dict[str, Any] = {}
        targets = {t: rows[t] for t in TASKS}
        for feature in SIGN_TARGETS:
            signs = sign_targets(rows, feature)
            targets[f"{feature}_sign"] = signs.map(
                lambda v: pd.NA if pd.isna(v) else ("high" if v > 0 else "low")
            )
        for name, y in targets.items():
            has = y.notna().to_numpy()
            train = has & (rows["split"] == "train").to_numpy()
            val = has & (rows["split"] == "val").to_numpy()
            labels = y.astype(str).to_numpy()
            if len(set(labels[train])) < 2:
                continue
            model, c = fit_baseline(
                x[train], labels[train], x[val] if val.any() else None, labels[val]
            )
            models[name] = {"model": model, "C": c, "n_train": int(train.sum())}
        return models

    # -- report ------------------------------------------------------------------------------------
    def _report(
        self, preds: Predictions, baselines: dict[str, Any], fit_rows: pd.DataFrame, command: str
    ) -> dict[str, Any]:
        rows = preds.rows
        hp = self.spec.to_hparams()
        sources = sorted(rows["source"].fillna("unknown").unique())
        report: dict[str, Any] = {
            "checkpoint": str(self.checkpoint),
            "manifest": str(self.manifest_path),
            "split": self.split,
            "command": command,
            "counts": {
                "rows_evaluated": len(rows),
                "per_source": {
                    s: int((rows["source"].fillna("unknown") == s).sum()) for s in sources
                },
                "train_rows_for_baseline": int((fit_rows["split"] == "train").sum()),
            },
            "baseline": {k: {"C": v["C"], "n_train": v["n_train"]} for k, v in baselines.items()},
            "hparams": _json_safe(hp),
            "sources": {},
        }
        train_rows = fit_rows[fit_rows["split"] == "train"]
        groups = [(s, rows["source"].fillna("unknown") == s) for s in sources]
        if len(sources) > 1:
            groups.append((ALL, pd.Series(True, index=rows.index)))
        for source, mask in groups:
            mask = mask.to_numpy()
            entry: dict[str, Any] = {"n": int(mask.sum())}
            for task in TASKS:
                result = self._task(preds, baselines, train_rows, task, mask, source)
                if result:
                    entry[task] = result
            features = self._features(preds, baselines, mask)
            if features:
                entry["features"] = features
            genre_tags = self._genre_tags(preds, mask)
            if genre_tags:
                entry["genre_tags"] = genre_tags
            if preds.keys is not None:
                key = key_report(key_truth(rows), preds.keys, preds.teacher_keys, mask)
                if key:
                    entry["key"] = key
            report["sources"][source] = entry
        report["cnn_below_baseline"] = below_baseline(report)
        return report

    def _task(
        self,
        preds: Predictions,
        baselines: dict[str, Any],
        train_rows: pd.DataFrame,
        task: str,
        mask: np.ndarray,
        source: str,
    ) -> dict[str, Any] | None:
        truth_all = preds.rows[task]
        labelled = mask & truth_all.notna().to_numpy()
        if not labelled.any():
            return None
        names = list(self.spec.names(task))
        truth = truth_all.astype(str).to_numpy()
        known = labelled & np.isin(truth, names)
        result: dict[str, Any] = {
            "unknown_labels": dict(Counter(truth[labelled & ~known].tolist())),
        }
        if not known.any() or task not in preds.probs:
            result["note"] = "no ground-truth label is one the model knows"
            return result
        y = truth[known].tolist()
        result["cnn"] = classification_scores(y, preds.probs[task][known], names)
        source_train = train_rows if source == ALL else train_rows[train_rows["source"] == source]
        result["majority"] = majority_scores(y, source_train[task].dropna().astype(str).tolist())
        if task in baselines and preds.descriptors is not None:
            model = baselines[task]["model"]
            classes = [str(c) for c in model.classes_]
            if set(y) <= set(classes):
                probs = model.predict_proba(preds.descriptors[known])
                result["baseline"] = classification_scores(y, probs, classes)
        result["confusion"] = confusion(y, preds.probs[task][known], names)
        return result

    def _genre_tags(self, preds: Predictions, mask: np.ndarray) -> dict[str, Any]:
        """Per genre tag of the model: :func:`genre_tag_scores` over the clips of ``mask`` that
        have genre tags, and the mean ROC-AUC / PR-AUC / prevalence over the tags defined there
        (a tag with no positive or no negative clip is reported but left out of the means)."""
        names = list(self.spec.genre_tag_names)
        if not names or "genre_tags" not in preds.probs:
            return {}
        rows = preds.rows
        tags: dict[str, Any] = {}
        for j, name in enumerate(names):
            column = f"{GENRE_TAG_PREFIX}{name}"
            if column not in rows:
                continue
            truth = pd.to_numeric(rows[column], errors="coerce").to_numpy(np.float64)
            truth = np.where(mask, truth, np.nan)
            if np.isfinite(truth).any():
                tags[name] = genre_tag_scores(truth, preds.probs["genre_tags"][:, j])
        if not tags:
            return {}
        defined = [t for t in tags.values() if t["roc_auc"] is not None]
        result: dict[str, Any] = {"n": max(t["n"] for t in tags.values()), "tags": tags}
        result["n_defined"] = len(defined)
        for key in ("roc_auc", "pr_auc", "prevalence"):
            result[f"mean_{key}"] = float(np.mean([t[key] for t in defined])) if defined else None
        return result

    def _features(
        self, preds: Predictions, baselines: dict[str, Any], mask: np.ndarray
    ) -> dict[str, Any]:
        """Per feature: the student against the ground truth (human, table or synthetic values),
        against each teacher, and the teacher against the ground truth where both exist."""
        out: dict[str, Any] = {}
        rows = preds.rows
        for j, name in enumerate(self.spec.feature_names):
            entry: dict[str, Any] = {}
            predicted = preds.features[:, j]
            if name in rows and np.isfinite(predicted[mask]).any():
                target = pd.to_numeric(rows[name], errors="coerce").to_numpy(np.float64)
                provenance = feature_provenance(rows, name).fillna("").to_numpy(str)
                truth = mask & np.isfinite(target) & np.isin(provenance, GROUND_TRUTH)
                if truth.sum() >= 3:
                    entry["cnn"] = feature_scores(target[truth], predicted[truth], name)
                    entry["ground_truth"] = sorted(set(provenance[truth]))
                teacher_column = f"{TEACHER_PREFIX}{name}"
                if teacher_column in rows:
                    teacher = pd.to_numeric(rows[teacher_column], errors="coerce").to_numpy(float)
                    labelled = {p for p in provenance[mask] if p.startswith("teacher:")}
                    label = sorted(labelled)[0] if labelled else "teacher"
                    has = mask & np.isfinite(teacher)
                    if has.sum() >= 3:
                        entry["cnn_vs_teacher"] = {
                            "teacher": label,
                            **feature_scores(teacher[has], predicted[has], name),
                        }
                    both = truth & np.isfinite(teacher)
                    if both.sum() >= 3:
                        entry["teacher_vs_truth"] = {
                            "teacher": label,
                            **feature_scores(target[both], teacher[both], name),
                        }
            if name in SIGN_TARGETS:
                signs = sign_targets(rows, name).to_numpy(np.float64)
                has = mask & np.isfinite(signs) & np.isfinite(predicted)
                value = auc(signs[has], predicted[has]) if has.any() else None
                if value is not None:
                    entry["auc_vs_sign"] = {"n": int(has.sum()), "cnn": value, "chance": 0.5}
                    key = f"{name}_sign"
                    if key in baselines and preds.descriptors is not None:
                        model = baselines[key]["model"]
                        positive = list(model.classes_).index("high")
                        scores = model.predict_proba(preds.descriptors[has])[:, positive]
                        entry["auc_vs_sign"]["baseline"] = auc(signs[has], scores)
                    teacher_column = f"{TEACHER_PREFIX}{name}"
                    if teacher_column in rows:
                        teacher = pd.to_numeric(rows[teacher_column], errors="coerce")
                        ok = has & np.isfinite(teacher.to_numpy(float))
                        if ok.any():
                            entry["auc_vs_sign"]["teacher"] = auc(
                                signs[ok], teacher.to_numpy(float)[ok]
                            )
            if entry:
                out[name] = entry
        return out


def confusion(truth: Sequence[str], probs: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix of the open-set prediction: rows = true labels present, cols = all names."""
    present = sorted(set(truth))
    predicted = [names[i] for i in probs.argmax(1)]
    matrix = [
        [sum(1 for t, p in zip(truth, predicted, strict=True) if t == a and p == b) for b in names]
        for a in present
    ]
    return {"true": present, "predicted": list(names), "matrix": matrix}


def below_baseline(report: dict[str, Any]) -> list[str]:
    """Headline metrics where the CNN does not beat the handcrafted baseline."""
    found = []
    for source, entry in report["sources"].items():
        for task in TASKS:
            scores = entry.get(task, {})
            if "cnn" in scores and "baseline" in scores:
                for metric in ("accuracy", "macro_f1"):
                    if scores["cnn"][metric] <= scores["baseline"][metric]:
                        found.append(
                            f"{source} {task} {metric}: CNN {scores['cnn'][metric]:.3f} <= "
                            f"baseline {scores['baseline'][metric]:.3f}"
                        )
        for name, scores in entry.get("features", {}).items():
            a = scores.get("auc_vs_sign", {})
            if a.get("baseline") is not None and a["cnn"] <= a["baseline"]:
                found.append(
                    f"{source} {name} ROC-AUC: CNN {a['cnn']:.3f} <= baseline {a['baseline']:.3f}"
                )
    return found


def _reason(cache: AudioCache, track_id: str) -> str:
    skipped = cache.skipped
    match = skipped[skipped["track_id"].astype(str) == str(track_id)]
    return str(match["reason"].iloc[0]) if len(match) else "not decoded"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# -- writing ---------------------------------------------------------------------------------------
def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.json, report.md and one confusion PNG per (source, task) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for source, entry in report["sources"].items():
        for task in TASKS:
            if "confusion" in entry.get(task, {}):
                path = out / f"confusion_{_slug(source)}_{task}.png"
                plot_confusion(entry[task]["confusion"], f"{source}: {task}", path)
                entry[task]["confusion"]["png"] = path.name
                pngs[f"{source}/{task}"] = path
    json_path = out / "report.json"
    json_path.write_text(json.dumps(_json_safe(report), indent=2))
    md_path = out / "report.md"
    md_path.write_text(format_markdown(report))
    return {"json": json_path, "markdown": md_path, **pngs}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plot_confusion(confusion_: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion_["matrix"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * matrix.shape[1], 1.0 + 0.6 * matrix.shape[0]))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(matrix.shape[1]), confusion_["predicted"], rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), confusion_["true"])
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            color="black" if v < matrix.max() / 2 else "white",
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _f(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _genre_tag_lines(scores: dict[str, Any] | None) -> list[str]:
    """The genre-tag means (rows of the metric table) and a per-tag table after it."""
    if not scores:
        return []
    k, n = scores["n_defined"], scores["n"]
    lines = [
        f"| genre tags: mean ROC-AUC ({k} tags, n={n}) | {_f(scores['mean_roc_auc'])} | | | "
        "0.500 |",
        f"| genre tags: mean PR-AUC | {_f(scores['mean_pr_auc'])} | | | "
        f"{_f(scores['mean_prevalence'])} |",
        "",
        "| genre tag | positives / clips | ROC-AUC | PR-AUC | prevalence |",
        "|---|---|---|---|---|",
    ]
    for name, tag in sorted(scores["tags"].items(), key=lambda kv: -kv[1]["positives"]):
        lines.append(
            f"| {name} | {tag['positives']} / {tag['n']} | {_f(tag['roc_auc'])} | "
            f"{_f(tag['pr_auc'])} | {_f(tag['prevalence'])} |"
        )
    return lines


def format_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: one table per source, then counts and settings."""
    lines = [
        f"# Evaluation: {Path(report['checkpoint']).name} on {report['manifest']} "
        f"(split: {report['split']})",
        "",
        f"Command: `{report['command']}`" if report["command"] else "",
        "",
        "Genre/mood `accuracy` and `macro-F1` choose among the labels each source has (GTZAN: 3 "
        "genres); `open` chooses among every label the model knows. Baseline: mean+std of 20 "
        "MFCCs and 64 log-mel bands per clip → logistic regression on the train split (C chosen "
        "on val). ROC-AUC ranks the predicted feature against the ±1 arousal/valence sign. Genre "
        "tags (multi-label AllMusic genres): per-tag ROC-AUC and PR-AUC on the clips that have "
        "genre tags; a random ranking scores 0.5 and the prevalence.",
        "",
    ]
    for source, entry in report["sources"].items():
        lines += [f"## {source} ({entry['n']} clips)", ""]
        lines += ["| metric | CNN | handcrafted LR | majority | chance |", "|---|---|---|---|---|"]
        for task in TASKS:
            scores = entry.get(task)
            if not scores or "cnn" not in scores:
                continue
            cnn, base, major = scores["cnn"], scores.get("baseline", {}), scores["majority"]
            n = len(cnn["labels"])
            lines.append(
                f"| {task} accuracy ({n} labels, n={cnn['n']}) | {_f(cnn['accuracy'])} | "
                f"{_f(base.get('accuracy'))} | {_f(major['accuracy'])} | "
                f"{_f(major['chance_accuracy'])} |"
            )
            lines.append(
                f"| {task} macro-F1 | {_f(cnn['macro_f1'])} | {_f(base.get('macro_f1'))} | "
                f"{_f(major['macro_f1'])} | |"
            )
            lines.append(
                f"| {task} accuracy, open set | {_f(cnn['accuracy_open'])} | "
                f"{_f(base.get('accuracy_open'))} | | |"
            )
        for name, scores in entry.get("features", {}).items():
            a = scores.get("auc_vs_sign")
            if a:
                lines.append(
                    f"| {name} ROC-AUC vs sign (n={a['n']}) | {_f(a['cnn'])} | "
                    f"{_f(a.get('baseline'))} | | 0.500 |"
                )
            if a and a.get("teacher") is not None:
                lines.append(
                    f"| {name} ROC-AUC vs sign, the teacher itself | {_f(a['teacher'])} | | | |"
                )
            for key, what in (
                ("cnn", "CNN vs " + "/".join(scores.get("ground_truth", ["truth"]))),
                ("cnn_vs_teacher", "CNN vs " + scores.get("cnn_vs_teacher", {}).get("teacher", "")),
                (
                    "teacher_vs_truth",
                    scores.get("teacher_vs_truth", {}).get("teacher", "") + " vs truth",
                ),
            ):
                reg = scores.get(key)
                if reg and reg.get("pearson_r") is not None:
                    tempo = (
                        f"; Acc1 {_f(reg['acc1'])}, Acc2 {_f(reg['acc2'])}" if "acc1" in reg else ""
                    )
                    lines.append(
                        f"| {name}: {what} (n={reg['n']}): r / ρ / MAE{tempo} | "
                        f"{_f(reg['pearson_r'])} / {_f(reg['spearman'])} / {_f(reg['mae'])} | | | |"
                    )
        lines += _genre_tag_lines(entry.get("genre_tags"))
        lines += key_lines(entry.get("key"))
        lines.append("")
        for task in TASKS:
            scores = entry.get(task, {})
            if scores.get("unknown_labels"):
                unknown = ", ".join(f"{k} ({v})" for k, v in scores["unknown_labels"].items())
                lines.append(f"Unknown {task} labels (not scored): {unknown}")
            if "confusion" in scores and "png" in scores["confusion"]:
                lines.append(f"![{source} {task}]({scores['confusion']['png']})")
        lines.append("")
    lines += ["## Where the CNN does not beat the handcrafted baseline", ""]
    below = report.get("cnn_below_baseline") or []
    lines += [f"- {b}" for b in below] or ["- nowhere (on this split)"]
    if below:
        lines += [
            "",
            "Why, in general: the CNN learns from a few hundred clips from scratch on 3 s crops "
            "within a CPU budget, while clip-level MFCC statistics summarise the whole 30-60 s "
            "clip and are hard to beat on small sets. docs/results.md discusses each case.",
        ]
    counts = report["counts"]
    lines += [
        "",
        "## Counts and settings",
        "",
        f"- clips evaluated: {counts['rows_evaluated']} ({counts['per_source']})",
        f"- train clips for the baseline: {counts['train_rows_for_baseline']}",
        f"- not decodable: {len(counts.get('not_decodable', {}))}",
    ]
    for track_id, reason in counts.get("not_decodable", {}).items():
        lines.append(f"  - {track_id}: {reason}")
    hp = report["hparams"]
    keys = (
        "genre_names",
        "mood_names",
        "crop_seconds",
        "n_mels",
        "hop_length",
        "width",
        "embed_dim",
    )
    lines.append("- checkpoint: " + ", ".join(f"{k}={hp.get(k)}" for k in keys if k in hp))
    lines.append("")
    return "\n".join(lines)
