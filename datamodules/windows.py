"""Fixed-length windows over a waveform: the crops a clip is tagged in and how much each counts.

Shapes are in samples; every function works on numpy arrays and imports no torch.
"""

from __future__ import annotations

import numpy as np


def fix_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis of ``wave`` to exactly ``length`` samples."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, length - n)]
    return np.pad(wave, pad)


def window_starts(n_samples: int, window: int, hop: int, min_tail: int = 0) -> list[int]:
    """Start indices of windows of ``window`` samples every ``hop`` samples, covering the end.

    A clip shorter than one window gets a single window at 0 (it is zero-padded); otherwise, when
    the windows on the hop grid leave a tail uncovered, one more window is aligned to the end, but
    only if that tail holds more than ``min_tail`` samples: a window that adds 13 ms of new audio
    would repeat its neighbour and count it twice (every GTZAN clip is 30.013 s).
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if n_samples - (starts[-1] + window) > max(min_tail, 0):
        starts.append(n_samples - window)
    return starts


def window_weights(starts: list[int], n_samples: int, window: int, hop: int) -> list[float]:
    """Weight of each window (``starts``, a subset of :func:`window_starts`) in a clip average.

    Each window on the hop grid adds ``hop`` samples of new audio and weighs 1; the end-aligned
    last window adds only the tail the grid left, so it weighs that tail as a share of ``hop``.
    That way every second of audio counts once per hop, the tail no more than the rest.
    """
    if n_samples <= window:
        return [1.0] * len(starts)
    last_on_grid = (n_samples - window) // hop * hop
    return [
        (s - last_on_grid) / hop if s % hop and s == n_samples - window else 1.0 for s in starts
    ]


def frame_windows(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Split a (samples,) waveform into (n_windows, window) windows (see window_starts)."""
    return np.stack(
        [fix_length(wave[s : s + window], window) for s in window_starts(wave.size, window, hop)]
    )
