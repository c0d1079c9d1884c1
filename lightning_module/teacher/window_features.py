"""The frozen pretrained musicnn's features of every 3 s window of a clip, cached per clip.

Computed once per audio file (and weights file), the expensive part of building the accurate
teacher: heads are then fitted, chosen on val and applied to these features without running the
network again. Each window goes through exactly the path a checkpoint with a ``musicnn`` /
``musicnn_pooled`` backbone runs at inference (``musicnn_logmel`` of the window, then the
backbone), so a head fitted here gives the same outputs inside :class:`TaggerNet`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

import numpy as np
import torch
from torch import nn

from datamodules.audio import window_starts
from datamodules.io import file_sha256
from datamodules.schema import spread_evenly
from datamodules.teacher_pass import FileCache
from lightning_module.model.backbones.musicnn import musicnn_logmel
from lightning_module.model.backbones.pretrained import build_pretrained_backbone

#: Bump when the window cutting or the stored features change (old cache files are then ignored).
FEATURES_VERSION = "musicnn-windows-v1"
#: musicnn's own patch: 3 s at 16 kHz.
WINDOW_SECONDS = 3.0
SAMPLE_RATE = 16000


@dataclass
class WindowFeatures:
    """One clip's features. Shapes: ``starts`` (W,) seconds; ``penultimate`` (W, 200);
    ``pooled`` (W, 1506): the front/mid-end features max- then mean-pooled over time."""

    starts: np.ndarray
    penultimate: np.ndarray
    pooled: np.ndarray

    def embedding(self, kind: str) -> np.ndarray:
        """(W, d) features a head of backbone ``kind`` sees: ``musicnn`` (the 200-d
        penultimate layer) or ``musicnn_pooled`` (penultimate + pooled, 1706-d)."""
        if kind == "musicnn":
            return self.penultimate.astype(np.float32)
        if kind == "musicnn_pooled":
            return np.concatenate([self.penultimate, self.pooled], axis=1).astype(np.float32)
        raise ValueError(f"unknown embedding {kind!r} (musicnn or musicnn_pooled)")


class FrozenMusicnn(nn.Module):
    """(W, samples) 16 kHz windows → musicnn's features of each (eval mode, no gradients).

    Args:
        weights: a file written by ``scripts/convert_musicnn.py``, of any of its models (the
            file says which architecture it holds: ``*_musicnn`` or ``*_vgg``).
    """

    def __init__(self, weights: str | os.PathLike) -> None:
        super().__init__()
        self.frontend = musicnn_logmel()
        self.backbone = build_pretrained_backbone(weights)
        self.eval()

    @torch.inference_mode()
    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone.features(self.frontend(windows.float()))


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file (part of every cache key: other weights, other features)."""
    return file_sha256(path)


def clip_windows(wave: torch.Tensor, max_windows: int) -> tuple[list[int], torch.Tensor]:
    """Start samples and (W, 3 s) windows of a 16 kHz clip: every 3 s, at most ``max_windows``
    evenly spread over the clip; a short clip is zero-padded to one window."""
    window = int(WINDOW_SECONDS * SAMPLE_RATE)
    starts = window_starts(len(wave), window, window)
    starts = [starts[i] for i in spread_evenly(len(starts), max_windows)]
    if len(wave) < window:
        wave = torch.nn.functional.pad(wave, (0, window - len(wave)))
    return starts, torch.stack([wave[s : s + window] for s in starts])


class FeatureCache(FileCache[WindowFeatures]):
    """Per-clip :class:`WindowFeatures` files in one folder, written atomically, keyed on the
    audio file (path, size, mtime), the weights digest, the window cap and the version."""

    suffix = ".npz"

    def __init__(self, folder: str | os.PathLike, weights_sha: str, max_windows: int) -> None:
        super().__init__(folder, weights_sha, max_windows, FEATURES_VERSION)

    def read(self, f: IO[bytes]) -> WindowFeatures:
        with np.load(f) as data:
            return WindowFeatures(data["starts"], data["penultimate"], data["pooled"])

    def valid(self, value: WindowFeatures) -> bool:
        finite = np.isfinite(value.penultimate).all() and np.isfinite(value.pooled).all()
        return bool(finite and len(value.starts) == len(value.penultimate) == len(value.pooled) > 0)

    def prepare(self, value: WindowFeatures) -> WindowFeatures:
        # Callers use the stored value, so a first run and a rerun from the cache fit the same
        # heads to the same numbers.
        return WindowFeatures(
            starts=value.starts.astype(np.float32),
            penultimate=value.penultimate.astype(np.float32),
            pooled=value.pooled.astype(np.float16),  # 1506 values per window: half the disk
        )

    def write(self, f: IO[bytes], value: WindowFeatures) -> None:
        np.savez(f, starts=value.starts, penultimate=value.penultimate, pooled=value.pooled)


def extract(model: FrozenMusicnn, wave: torch.Tensor, max_windows: int) -> WindowFeatures:
    """Features of every window of a (samples,) 16 kHz clip."""
    starts, windows = clip_windows(wave, max_windows)
    device = next(model.parameters()).device
    out = {name: value.cpu() for name, value in model(windows.to(device)).items()}
    pooled = torch.cat([out["max_pool"], out["mean_pool"]], dim=1)
    return WindowFeatures(
        starts=np.asarray(starts, np.float32) / SAMPLE_RATE,
        penultimate=out["penultimate"].numpy(),
        pooled=pooled.numpy(),
    )
