"""Integrated loudness (ITU-R BS.1770-4, with its gating) in LUFS, via pyloudnorm (MIT).

Spotify's ``loudness`` is an integrated loudness of the whole track in dB; ours is measured on the
clip we have (an excerpt, usually), on the mono mix: a stereo file measured as stereo reads ~3 dB
louder than its mono downmix, and every clip here is decoded to mono, so the numbers are
comparable across the project.
"""

from __future__ import annotations

import math

import numpy as np

#: BS.1770's gating block: shorter audio has no defined integrated loudness.
BLOCK_SECONDS = 0.4
VERSION = "pyloudnorm-bs1770-4-mono-v1"


def integrated_loudness(wave: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of a mono float waveform (samples,) in [-1, 1].

    Raises:
        ValueError: shorter than one 400 ms gating block, or silent / below the -70 LUFS
            absolute gate (no defined loudness, which pyloudnorm would return as -inf).
    """
    import pyloudnorm  # the features extra

    wave = np.asarray(wave, dtype=np.float64)
    if wave.size <= BLOCK_SECONDS * sample_rate:
        raise ValueError(
            f"too short for BS.1770 loudness ({wave.size / sample_rate:.2f} s <= {BLOCK_SECONDS} s)"
        )
    value = float(pyloudnorm.Meter(sample_rate).integrated_loudness(wave))
    if not math.isfinite(value):
        raise ValueError("silent: below BS.1770's -70 LUFS absolute gate, no defined loudness")
    return value
