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

import logging
import os
from collections import Counter
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
from lightning_module.evaluation.headline import headline
from lightning_module.evaluation.key_scores import KeyTeacher, key_report, key_truth
from lightning_module.evaluation.logistic import fit_logistic
from lightning_module.evaluation.ratings import rating_scores
from lightning_module.evaluation.report import (  # noqa: F401 (write_report: the public API)
    json_safe,
    write_report,
)
from lightning_module.evaluation.scores import (  # noqa: F401 (re-exported: the public API)
    CLASS_TASKS,
    SIGN_TARGETS,
    auc,
    below_baseline,
    classification_scores,
    confusion,
    feature_scores,
    genre_tag_scores,
    majority_scores,
    regression_scores,
    sign_targets,
    tempo_scores,
)
from lightning_module.inference.tagger import Tagger, load_checkpoint

log = logging.getLogger(__name__)

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
    probs: dict[str, list] = {t: [] for t in CLASS_TASKS if spec.names(t)}
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

    def cache_for(self, rows: pd.DataFrame) -> AudioCache:
        """The audio cache holding ``rows`` (decoded on first use)."""
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
        cache = self.cache_for(df if use_baseline else eval_rows)
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
        targets = {t: rows[t] for t in CLASS_TASKS}
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
            model, c = fit_logistic(
                x[train], labels[train], x[val] if val.any() else None, labels[val], fallback_c=1.0
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
            "hparams": json_safe(hp),
            "sources": {},
        }
        train_rows = fit_rows[fit_rows["split"] == "train"]
        groups = [(s, rows["source"].fillna("unknown") == s) for s in sources]
        if len(sources) > 1:
            groups.append((ALL, pd.Series(True, index=rows.index)))
        for source, mask in groups:
            mask = mask.to_numpy()
            entry: dict[str, Any] = {"n": int(mask.sum())}
            for task in CLASS_TASKS:
                result = self._task(preds, baselines, train_rows, task, mask, source)
                if result:
                    entry[task] = result
            features = self._features(preds, baselines, mask)
            if features:
                entry["features"] = features
            genre_tags = self._genre_tags(preds, mask)
            if genre_tags:
                entry["genre_tags"] = genre_tags
            ratings = rating_scores(preds.rows, mask, self._rated_outputs(preds))
            if ratings:
                entry["ratings"] = ratings
            if preds.keys is not None:
                key = key_report(key_truth(rows), preds.keys, preds.teacher_keys, mask)
                if key:
                    entry["key"] = key
            report["sources"][source] = entry
        report["cnn_below_baseline"] = below_baseline(report)
        report["headline"] = headline(report)
        return report

    def _rated_outputs(self, preds: Predictions) -> dict[str, tuple[list[str], np.ndarray]]:
        """The outputs :func:`rating_scores` ranks: features and class probabilities."""
        outputs = {t: (list(self.spec.names(t)), p) for t, p in preds.probs.items()}
        if preds.features is not None:
            outputs["feature"] = (list(self.spec.feature_names), preds.features)
        return outputs

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


def _reason(cache: AudioCache, track_id: str) -> str:
    skipped = cache.skipped
    match = skipped[skipped["track_id"].astype(str) == str(track_id)]
    return str(match["reason"].iloc[0]) if len(match) else "not decoded"
