"""Tempo bins: log-spaced BPM classes and their decoding back to BPM, without torch.

The tempo head (``model.tempo``) classifies over these bins; decoding is numpy so that the
torch-free runtime (onnxruntime + numpy) turns the head's output into BPM the same way training
metrics do.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from lightning_module.model.spec import TaggerSpec

if TYPE_CHECKING:
    import torch


class TempoBins:
    """``n`` bins log-spaced from ``low`` to ``high`` BPM.

    Shapes: ``soft_targets``: (batch,) BPM tensor → (batch, n) rows summing to 1; ``decode``:
    (..., n) probabilities → (...,) BPM (numpy; a tensor is accepted and read as numpy).
    """

    def __init__(self, n: int, low: float = 30.0, high: float = 300.0, sigma: float = 1.0) -> None:
        if n < 2 or not 0 < low < high:
            raise ValueError(f"tempo bins need n >= 2 and 0 < low < high, not {n}, {low}, {high}")
        self.n, self.low, self.high, self.sigma = n, low, high, sigma
        self._log_low = math.log(low)
        self._step = (math.log(high) - self._log_low) / (n - 1)

    def position(self, bpm: np.ndarray) -> np.ndarray:
        """Fractional bin index of each BPM (clamped to the range)."""
        log_bpm = np.log(np.clip(np.asarray(bpm, dtype=np.float64), self.low, self.high))
        return (log_bpm - self._log_low) / self._step

    def soft_targets(self, bpm: torch.Tensor) -> torch.Tensor:
        """Gaussian bumps (``sigma`` bins wide) around each tempo's bin: the training target."""
        import torch  # training only: the runtime never builds targets

        log_bpm = bpm.float().clamp(self.low, self.high).log()
        position = (log_bpm - self._log_low) / self._step
        centres = torch.arange(self.n, device=bpm.device, dtype=torch.float32)
        distance = centres[None, :] - position[:, None]
        weights = torch.exp(-0.5 * (distance / self.sigma) ** 2)
        return weights / weights.sum(-1, keepdim=True)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """BPM of the most probable bin, refined by the probability-weighted mean of its two
        neighbours on the log axis (sub-bin precision, no mixing of distant octaves)."""
        if not isinstance(probs, np.ndarray):  # a CPU tensor from training metrics
            probs = probs.detach().cpu().numpy()
        probs = probs.astype(np.float64)
        best = probs.argmax(-1)[..., None]
        index = np.clip(np.concatenate([best - 1, best, best + 1], -1), 0, self.n - 1)
        weight = np.take_along_axis(probs, index, -1)
        position = (index * weight).sum(-1) / np.maximum(weight.sum(-1), 1e-12)
        return np.exp(self._log_low + position * self._step).astype(np.float32)


def tempo_bins(spec: TaggerSpec) -> TempoBins | None:
    """The tempo head's bins of a model (None: it has no tempo head)."""
    return TempoBins(spec.tempo_bins, spec.tempo_min, spec.tempo_max) if spec.tempo_bins else None
