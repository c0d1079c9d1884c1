"""Waveform augmentation for training crops (audiomentations, on the DataLoader workers)."""

from __future__ import annotations


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
