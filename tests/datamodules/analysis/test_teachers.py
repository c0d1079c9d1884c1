"""The signal-processing feature teachers on generated audio with known answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa", reason="the features extra (make test installs it)")
pytest.importorskip("pyloudnorm", reason="the features extra (make test installs it)")

from datamodules.analysis.loudness import integrated_loudness  # noqa: E402
from datamodules.analysis.tempo import estimate_tempo, tempo_accuracy  # noqa: E402

SR = 16000


def click_track(bpm: float, seconds: float = 12.0, sr: int = SR) -> np.ndarray:
    """Decaying noise bursts on every beat (a metronome), plus a little noise floor."""
    rng = np.random.default_rng(0)
    wave = 0.001 * rng.standard_normal(int(seconds * sr))
    burst = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.linspace(0, 8, int(0.03 * sr)))
    for onset in np.arange(0, seconds - 0.05, 60.0 / bpm):
        start = int(onset * sr)
        wave[start : start + burst.size] += 0.5 * burst
    return wave.astype(np.float32)


def pink_noise(seconds: float, sr: int, rms_dbfs: float, seed: int = 0) -> np.ndarray:
    """1/f noise band-limited to 20 Hz - 8 kHz (below 20 Hz BS.1770's K-weighting removes
    energy, which would make the reading depend on the generator), scaled to an RMS in dBFS."""
    n = int(seconds * sr)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = (freqs >= 20) & (freqs <= 8000)
    spectrum[~band] = 0
    spectrum[band] /= np.sqrt(freqs[band])
    wave = np.fft.irfft(spectrum, n)
    return (wave * 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(wave**2))).astype(np.float64)


@pytest.mark.parametrize("bpm", [120.0, 90.0])
def test_a_click_track_is_estimated_at_its_tempo_or_an_octave(bpm: float) -> None:
    estimate = estimate_tempo(click_track(bpm), SR)
    assert any(abs(estimate - f * bpm) <= 2.0 * f for f in (0.5, 1.0, 2.0)), estimate
    assert tempo_accuracy(estimate, bpm)[1]


def test_tempo_refuses_short_and_silent_audio() -> None:
    with pytest.raises(ValueError, match="too short"):
        estimate_tempo(click_track(120, seconds=2.0), SR)
    with pytest.raises(ValueError, match="silent"):
        estimate_tempo(np.zeros(10 * SR, dtype=np.float32), SR)


def test_tempo_accuracy_counts_octaves_only_for_acc2() -> None:
    assert tempo_accuracy(121.0, 120.0) == (True, True)
    assert tempo_accuracy(60.5, 120.0) == (False, True)
    assert tempo_accuracy(40.2, 120.0) == (False, True)
    assert tempo_accuracy(100.0, 120.0) == (False, False)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_pink_noise_at_minus_20_dbfs_reads_its_bs1770_value(sr: int) -> None:
    # Pink noise in 20 Hz - 8 kHz at -20 dBFS RMS reads -19.9 LUFS at either rate (K-weighting
    # lifts the top octaves a little); the reading moves < 0.1 dB across seeds.
    assert integrated_loudness(pink_noise(10.0, sr, -20.0), sr) == pytest.approx(-19.9, abs=0.5)


def test_a_1khz_sine_at_minus_20_dbfs_reads_minus_20_lufs() -> None:
    t = np.arange(10 * SR) / SR
    sine = np.sqrt(2) * 10 ** (-20 / 20) * np.sin(2 * np.pi * 997 * t)  # RMS -20 dBFS
    assert integrated_loudness(sine, SR) == pytest.approx(-20.0, abs=0.5)


def test_loudness_of_silence_and_very_short_audio_is_a_reason_not_minus_infinity() -> None:
    with pytest.raises(ValueError, match="silent"):
        integrated_loudness(np.zeros(5 * SR), SR)
    with pytest.raises(ValueError, match="too short"):
        integrated_loudness(pink_noise(0.3, SR, -20.0), SR)
