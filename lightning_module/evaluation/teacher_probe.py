"""The "what a user would pick instead" line: frozen musicnn embeddings + logistic regression.

Each clip becomes one descriptor from the converted teacher (PyTorch, no TensorFlow): over up to
``max_patches`` of its 3 s patches (evenly spread), the mean and std of the taggram (2 x 50), the
mean penultimate layer (200) and the mean max-pooled front/mid-end features (753). A standardised
logistic regression per task is fit on the train split, its C chosen on val macro-F1, and scored
on test, per source: genre and mood accuracy / macro-F1 among the labels that source has, and
ROC-AUC of the energy / valence sign (4Q's weak arousal / valence targets).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from datamodules.audio import window_starts
from datamodules.io import atomic_path
from datamodules.schema import spread_evenly
from lightning_module.evaluation.logistic import CS, fit_logistic
from lightning_module.evaluation.scores import accuracy, macro_f1, roc_auc
from lightning_module.model.backbones.musicnn import (
    PATCH_FRAMES,
    MusicnnBackbone,
    load_pretrained,
    musicnn_logmel,
)

SIGN_FEATURES = ("energy", "valence")


class TeacherDescriptor(nn.Module):
    """(samples,) 16 kHz waveform → (1053,) clip descriptor from the frozen teacher.

    Args:
        weights: a file written by ``scripts/convert_musicnn.py``.
        max_patches: at most this many 3 s patches per clip, evenly spread (bounds CPU time).
    """

    def __init__(self, weights: str | os.PathLike, max_patches: int = 4) -> None:
        super().__init__()
        self.frontend = musicnn_logmel()
        self.backbone = MusicnnBackbone()
        self.backbone.load_state_dict(load_pretrained(weights)["state_dict"])
        self.max_patches = max_patches
        self.eval()

    @torch.inference_mode()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.frontend(wave.float()[None])[0, 0]  # (96, frames)
        if mel.shape[1] < PATCH_FRAMES:  # repeat-pad short clips, as musicnn was trained
            mel = mel.repeat(1, -(-PATCH_FRAMES // mel.shape[1]))[:, :PATCH_FRAMES]
        starts = window_starts(mel.shape[1], PATCH_FRAMES, PATCH_FRAMES)
        starts = [starts[i] for i in spread_evenly(len(starts), self.max_patches)]
        batch = torch.stack([mel[:, s : s + PATCH_FRAMES] for s in starts])[:, None]
        features = self.backbone.features(batch)
        taggram = self.backbone.tag_head(features["penultimate"]).sigmoid()
        return torch.cat(
            [
                taggram.mean(0),
                taggram.std(0, unbiased=False),
                features["penultimate"].mean(0),
                features["max_pool"].mean(0),
            ]
        )


def describe(
    rows: pd.DataFrame,
    load: Callable[[str], torch.Tensor],
    descriptor: TeacherDescriptor,
    cache: str | os.PathLike | None = None,
    save_every: int = 25,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Descriptors of ``rows`` (by ``track_id``); resumable through an ``.npz`` cache.

    Returns:
        (descriptors (n_ok, 1053), track ids of those rows); rows whose audio ``load`` refuses
        (it raises ``ValueError``, e.g. ``AudioError``) are left out.
    """
    from tqdm.auto import tqdm

    done: dict[str, np.ndarray] = {}
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as stored:
            done = {k: stored[k] for k in stored.files}
    fresh = 0
    failed: set[str] = set()
    for track_id, path in tqdm(
        list(zip(rows["track_id"], rows["audio_path"], strict=True)),
        desc="teacher descriptors",
        unit="clip",
        disable=not progress,
    ):
        if track_id in done:
            continue
        try:
            done[track_id] = descriptor(load(path)).numpy()
        except ValueError:
            failed.add(track_id)
            continue
        fresh += 1
        if cache is not None and fresh % save_every == 0:
            _save(cache, done)
    if cache is not None and fresh:
        _save(cache, done)
    ids = [t for t in rows["track_id"] if t in done and t not in failed]
    return np.stack([done[t] for t in ids]), ids


def _save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def probe(rows: pd.DataFrame, x: np.ndarray) -> list[dict[str, Any]]:
    """Fit on train, choose C on val, score test, per task and source (see the module doc).

    Args:
        rows: manifest rows aligned with ``x`` (``split``, ``source``, ``genre``, ``mood``, ...).
        x: (n, d) descriptors.

    Returns:
        One dict per (task, source): ``task``, ``source``, ``n``, ``C`` and ``accuracy`` +
        ``macro_f1`` (classification) or ``auc`` (energy / valence sign).
    """
    rows = rows.reset_index(drop=True)
    split = rows["split"].to_numpy()
    results: list[dict[str, Any]] = []
    targets: dict[str, pd.Series] = {t: rows[t] for t in ("genre", "mood") if t in rows}
    for feature in SIGN_FEATURES:
        if feature in rows:
            values = pd.to_numeric(rows[feature], errors="coerce")
            # 4Q's weak targets are 0/1 (sign of arousal / valence); other values are no signs.
            signs = values.where(values.isin([0.0, 1.0]))
            targets[feature] = signs.map(lambda v: pd.NA if pd.isna(v) else ("high", "low")[v < 1])
    for task, target in targets.items():
        labelled = target.notna().to_numpy()
        fit = labelled & (split == "train")
        val = labelled & (split == "val")
        if fit.sum() < 2 or len(set(target[fit])) < 2:
            continue
        y = target.astype(str).to_numpy()
        model, c = fit_logistic(x[fit], y[fit], x[val], y[val], fallback_c=CS[0])
        classes = list(model.classes_)
        for source in sorted(rows.loc[labelled & (split == "test"), "source"].dropna().unique()):
            test = labelled & (split == "test") & (rows["source"] == source).to_numpy()
            probs = model.predict_proba(x[test])
            truth = y[test]
            row: dict[str, Any] = {"task": task, "source": source, "n": int(test.sum()), "C": c}
            if task in SIGN_FEATURES:
                if len(set(truth)) > 1:
                    row["auc"] = roc_auc(truth == "high", probs[:, classes.index("high")])
            else:
                present = sorted(set(truth))
                columns = [classes.index(n) for n in present if n in classes]
                guess = [classes[columns[i]] for i in probs[:, columns].argmax(1)]
                row["accuracy"] = accuracy(list(truth), guess)
                row["macro_f1"] = macro_f1(list(truth), guess, labels=present)
            results.append(row)
    return results


def format_results(results: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`probe`'s results."""
    lines = ["| task | source | test clips | accuracy | macro-F1 | AUC | C |", "|---" * 7 + "|"]
    for r in results:
        cells = [f"{r[k]:.3f}" if k in r else "" for k in ("accuracy", "macro_f1", "auc")]
        lines.append(
            f"| {r['task']} | {r['source']} | {r['n']} | " + " | ".join(cells) + f" | {r['C']:g} |"
        )
    return "\n".join(lines)
