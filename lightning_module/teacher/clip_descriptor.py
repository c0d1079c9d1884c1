"""The frozen-musicnn probe's clip descriptor, from the accurate teacher's own window features.

"What a user would pick instead": one (1053,) vector per clip from the frozen pretrained musicnn,
on which :mod:`lightning_module.evaluation.teacher_probe` fits a logistic regression per task.
The windows, the network and the per-clip cache are those of :mod:`.window_features` (the
accurate teacher's): over the clip's 3 s windows (at most ``max_windows``, evenly spread; a short
clip zero-padded to one window), the mean and std of the taggram (2 x 50: the tag head's
sigmoid of each window's penultimate layer), the mean penultimate layer (200) and the mean
max-pooled front/mid-end features (753).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from datamodules.teacher_pass import teacher_pass
from lightning_module.teacher.probe import LinearHead
from lightning_module.teacher.window_features import (
    FeatureCache,
    FrozenMusicnn,
    WindowFeatures,
    extract,
    weights_digest,
)

#: Front- and mid-end channels max-pooled over time (``WindowFeatures.pooled`` is max | mean).
MAX_POOL_DIM = 753
#: taggram mean and std (2 x 50), mean penultimate (200), mean max-pool (753).
DESCRIPTOR_DIM = 2 * 50 + 200 + MAX_POOL_DIM


def tag_head(weights: dict) -> LinearHead:
    """musicnn's own tag layer (penultimate (200) → 50 tag logits) from converted weights
    (``load_pretrained(path)``)."""
    state = weights["state_dict"]
    return LinearHead(
        state["tag_head.weight"].numpy().astype(np.float32),
        state["tag_head.bias"].numpy().astype(np.float32),
    )


def descriptor(features: WindowFeatures, head: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(1053,) float32 descriptor of one clip's (W, ...) window features (see the module doc).

    Args:
        features: the clip's windows from :func:`.window_features.extract` or the cache.
        head: (W, 200) penultimate → (W, 50) tag logits (:func:`tag_head`).
    """
    penultimate = features.penultimate.astype(np.float32)
    taggram = 1.0 / (1.0 + np.exp(-head(penultimate)))
    max_pool = features.pooled[:, :MAX_POOL_DIM].astype(np.float32)
    parts = [taggram.mean(0), taggram.std(0), penultimate.mean(0), max_pool.mean(0)]
    return np.concatenate(parts).astype(np.float32)


class TeacherDescriptor:
    """(samples,) 16 kHz waveform → (1053,) clip descriptor from the frozen teacher.

    Args:
        weights: a file written by ``scripts/convert_musicnn.py``.
        max_patches: at most this many 3 s windows per clip, evenly spread (bounds CPU time).
    """

    def __init__(self, weights: str | os.PathLike, max_patches: int = 4) -> None:
        from lightning_module.model.backbones.musicnn import load_pretrained

        self.model = FrozenMusicnn(weights)
        self.head = tag_head(load_pretrained(weights))
        self.weights_sha = weights_digest(weights)
        self.max_patches = max_patches

    def features(self, wave: torch.Tensor) -> WindowFeatures:
        """The clip's window features (what the cache holds)."""
        return extract(self.model, wave, self.max_patches)

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(descriptor(self.features(wave), self.head))


def describe(
    rows: pd.DataFrame,
    load: Callable[[str], torch.Tensor],
    descriptor_of: TeacherDescriptor,
    cache: str | os.PathLike,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Descriptors of ``rows`` (by ``track_id``), their window features cached per clip.

    Args:
        rows: manifest rows (``track_id``, ``audio_path``).
        load: audio path → (samples,) 16 kHz waveform; ``AudioError`` leaves the row out.
        descriptor_of: the frozen teacher.
        cache: folder of per-clip window features (:class:`.window_features.FeatureCache`);
            the accurate teacher's ``DIR/features`` shares them when ``max_patches`` equals its
            ``max_windows``.

    Returns:
        (descriptors (n_ok, 1053), track ids of those rows).
    """
    found = teacher_pass(
        zip(rows["track_id"], rows["audio_path"], strict=True),
        {"features": FeatureCache(cache, descriptor_of.weights_sha, descriptor_of.max_patches)},
        decode=lambda audio: load(str(audio)),
        compute=lambda _, wave: descriptor_of.features(wave),
        desc="teacher descriptors",
        progress=progress,
    )
    ids = [t for t in rows["track_id"] if t in found.values]
    x = [descriptor(found.values[t]["features"], descriptor_of.head) for t in ids]
    return np.stack(x) if x else np.zeros((0, DESCRIPTOR_DIM), np.float32), ids
