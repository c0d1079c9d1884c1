"""Waveform augmentation for training crops (audiomentations, on the DataLoader workers), and the
speed change that moves the tempo and key labels with the audio."""

from __future__ import annotations

import numpy as np


def label_preserving_augment() -> object:
    """Waveform augmentation that leaves every target valid.

    Gain, time-stretch and pitch-shift are left out on purpose: they would change the loudness,
    tempo and key the regression head is asked to predict.
    """
    import audiomentations as A

    return A.Compose(
        [
            A.AddColorNoise(min_snr_db=25.0, max_snr_db=45.0, p=0.3),
            A.SevenBandParametricEQ(min_gain_db=-3.0, max_gain_db=3.0, p=0.3),
            A.PolarityInversion(p=0.5),
        ]
    )


def speed_change(wave: np.ndarray, semitones: float) -> np.ndarray:
    """The waveform played ``2 ** (semitones / 12)`` times faster, at the same sample rate: its
    pitch moves by ``semitones`` and its tempo by the same ratio (a turntable's pitch fader).

    Unlike a time-stretch or a pitch-shift alone it needs no phase vocoder, so it adds no
    artefacts; its labels move together (:func:`speed_change_targets`).

    Shapes: (samples,) float32 → (round(samples / ratio),) float32.
    """
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    if ratio == 1.0:
        return wave
    # Resampling from rate r to r / ratio, then reading at r, plays the audio ``ratio`` faster.
    rate = 48000
    return soxr.resample(np.asarray(wave, np.float32), rate, rate / ratio).astype(np.float32)


def speed_change_targets(
    semitones: float, tempo: float | None = None, key: int | None = None
) -> tuple[float | None, int | None]:
    """Labels of audio after :func:`speed_change`: the tempo times the speed ratio, the key
    transposed by ``semitones`` (a whole number for a key label to stay a key).

    Raises:
        ValueError: a key with a fractional shift (it would fall between two keys).
    """
    from datamodules.analysis.key import shift_key

    ratio = 2.0 ** (semitones / 12.0)
    if key is not None and key >= 0 and float(semitones) != round(semitones):
        raise ValueError(f"a key moves by whole semitones, not {semitones}")
    new_key = shift_key(key, int(round(semitones))) if key is not None and key >= 0 else key
    return (tempo * ratio if tempo is not None else None), new_key
