"""Generated tonal audio of a known key, for the key head's tests (no data files needed)."""

from __future__ import annotations

import numpy as np

from datamodules.analysis.key import key_index

# Chord roots (semitones above the tonic) and qualities of I-IV-V-I / i-iv-V-i.
_MAJOR = ((0, (0, 4, 7)), (5, (0, 4, 7)), (7, (0, 4, 7)), (0, (0, 4, 7)))
_MINOR = ((0, (0, 3, 7)), (5, (0, 3, 7)), (7, (0, 4, 7)), (0, (0, 3, 7)))


def cadence(tonic: str, mode: str, sample_rate: int = 16000, seconds: float = 8.0) -> np.ndarray:
    """A cadence in ``tonic`` ``mode`` (e.g. ``"A", "minor"``): four chords of harmonic tones
    around middle C with the root in the bass, (samples,) float32 in [-1, 1]."""
    index = key_index(tonic, mode)
    pitch = 60 + index % 12  # the tonic near middle C (MIDI)
    chords = _MINOR if index >= 12 else _MAJOR
    per_chord = int(seconds * sample_rate / len(chords))
    t = np.arange(per_chord) / sample_rate
    envelope = np.exp(-1.5 * t)
    parts = []
    for root, quality in chords:
        notes = [pitch + root + q for q in quality] + [
            pitch + root - 24
        ]  # the bass two octaves down
        tone = np.zeros(per_chord)
        for midi in notes:
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            for harmonic, gain in ((1, 1.0), (2, 0.5), (3, 0.25)):
                tone += gain * np.sin(2 * np.pi * f0 * harmonic * t)
        parts.append(tone * envelope)
    wave = np.concatenate(parts)
    return (0.8 * wave / np.abs(wave).max()).astype(np.float32)
