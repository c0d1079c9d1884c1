"""A corpus of bad and unusual audio inputs, generated small and fast in a test's tmp folder.

Each :class:`BadAudio` is one kind of input a user may feed the framework. ``error`` is ``None``
when the input must work (it is unusual but valid audio) and otherwise a regular expression the
one-line :class:`datamodules.audio.AudioError` must match. The whole corpus takes ~5 MB of disk and
well under a second to write.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

#: Seconds of the ordinary clips in the corpus (long enough for a 1 s prediction window).
SECONDS = 2.5


@dataclass(frozen=True)
class BadAudio:
    """One generated input: its name, path and what must happen when it is loaded."""

    kind: str
    path: Path
    error: str | None  # regex of the expected one-line error, None if it must load
    min_seconds: float = 0.0  # a loaded clip lasts at least this long


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x[:, None]


def _write(path: Path, data: np.ndarray, sr: int, **kwargs) -> Path:
    sf.write(path, data.astype(np.float32), sr, **kwargs)
    return path


def _empty(d: Path) -> Path:
    (d / "empty.wav").write_bytes(b"")
    return d / "empty.wav"


def _zero_length(d: Path) -> Path:
    return _write(d / "zero_length.wav", np.zeros((0, 1)), 16000)


def _truncated_mp3(d: Path) -> Path:
    whole = _write(d / "whole.mp3", _tone(SECONDS, 22050), 22050)
    data = whole.read_bytes()
    whole.unlink()
    (d / "truncated.mp3").write_bytes(data[: len(data) // 2])  # cut mid-frame
    return d / "truncated.mp3"


def _mp3_header_only(d: Path) -> Path:
    whole = _write(d / "whole2.mp3", _tone(SECONDS, 22050), 22050)
    data = whole.read_bytes()
    whole.unlink()
    (d / "header_only.mp3").write_bytes(data[:300])  # an ID3/frame header and no music
    return d / "header_only.mp3"


def _truncated_wav(d: Path) -> Path:
    whole = _write(d / "whole.wav", _tone(SECONDS, 16000), 16000, subtype="PCM_16")
    data = whole.read_bytes()
    whole.unlink()
    (d / "truncated.wav").write_bytes(data[: 44 + (len(data) - 44) // 2])  # header says more
    return d / "truncated.wav"


def _wrong_extension(d: Path) -> Path:
    # FLAC bytes behind an .mp3 name: libsndfile must go by content, not by name.
    flac = _write(d / "tmp.flac", _tone(SECONDS, 22050), 22050)
    return flac.rename(d / "flac_named.mp3")


def _non_audio(d: Path) -> Path:
    (d / "notes.wav").write_bytes(b"this is a shopping list, not audio\n" * 50)
    return d / "notes.wav"


def _random_bytes(d: Path) -> Path:
    (d / "noise.mp3").write_bytes(np.random.default_rng(1).bytes(20000))
    return d / "noise.mp3"


def _directory(d: Path) -> Path:
    (d / "x.wav").mkdir()
    return d / "x.wav"


def _missing(d: Path) -> Path:
    os.symlink(d / "gone.wav", d / "broken_link.wav")  # a dangling link: the file is gone
    return d / "broken_link.wav"


def _pcm_u8(d: Path) -> Path:
    return _write(d / "pcm_u8.wav", _tone(SECONDS, 22050), 22050, subtype="PCM_U8")


def _pcm_24(d: Path) -> Path:
    return _write(d / "pcm_24.wav", _tone(SECONDS, 44100), 44100, subtype="PCM_24")


def _float(d: Path) -> Path:
    return _write(d / "float32.wav", _tone(SECONDS, 48000), 48000, subtype="FLOAT")


def _rate_8k(d: Path) -> Path:
    return _write(d / "rate_8k.wav", _tone(SECONDS, 8000), 8000)


def _rate_96k(d: Path) -> Path:
    return _write(d / "rate_96k.wav", _tone(SECONDS, 96000), 96000, subtype="PCM_24")


def _six_channels(d: Path) -> Path:
    return _write(d / "surround_5_1.wav", _tone(SECONDS, 48000, channels=6), 48000)


def _silent(d: Path) -> Path:
    return _write(d / "silent.wav", np.zeros((int(SECONDS * 16000), 1)), 16000)


def _nan(d: Path) -> Path:
    data = _tone(SECONDS, 16000)
    data[1000:1100] = np.nan
    return _write(d / "nan.wav", data, 16000, subtype="FLOAT")


def _inf(d: Path) -> Path:
    data = _tone(SECONDS, 16000)
    data[500] = np.inf
    data[501] = -np.inf
    return _write(d / "inf.wav", data, 16000, subtype="DOUBLE")


def _too_short(d: Path) -> Path:
    return _write(d / "blip.wav", _tone(0.05, 16000), 16000)


def _one_hour(d: Path) -> Path:
    """One hour of audio in ~3.6 MB: 8-bit at 1 kHz, a quiet tone (cheap to write and decode)."""
    sr, seconds = 1000, 3600
    path = d / "one_hour.wav"
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_U8") as f:
        block = _tone(60.0, sr)
        for _ in range(seconds // 60):
            f.write(block)
    return path


def _odd_name(d: Path) -> Path:
    folder = d / "my music – été"
    folder.mkdir()
    return _write(folder / "Café del Mar (live) 日本語 #1.wav", _tone(SECONDS, 22050), 22050)


def _huge_header(d: Path) -> Path:
    """A WAV header claiming 0xFFFFFFFF bytes of data followed by a few samples."""
    samples = (_tone(0.5, 16000)[:, 0] * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    header += b"data" + struct.pack("<I", 0xFFFFFFFF)
    (d / "lying_header.wav").write_bytes(header + samples)
    return d / "lying_header.wav"


#: kind -> (writer, expected error regex or None, minimum seconds once loaded)
KINDS: dict[str, tuple[Callable[[Path], Path], str | None, float]] = {
    "empty_file": (_empty, r"empty file \(0 bytes\)", 0),
    "zero_length_audio": (_zero_length, r"no audio samples", 0),
    "truncated_mp3": (_truncated_mp3, None, 0.5),
    "mp3_header_only": (_mp3_header_only, r"not a readable audio file|no audio samples", 0),
    "truncated_wav": (_truncated_wav, None, 0.5),
    "wrong_extension": (_wrong_extension, None, SECONDS - 0.1),
    "non_audio_text": (_non_audio, r"not a readable audio file", 0),
    "random_bytes": (_random_bytes, r"not a readable audio file", 0),
    "directory_named_wav": (_directory, r"not a regular file", 0),
    "dangling_symlink": (_missing, r"file not found", 0),
    "pcm_8bit": (_pcm_u8, None, SECONDS - 0.1),
    "pcm_24bit": (_pcm_24, None, SECONDS - 0.1),
    "float32": (_float, None, SECONDS - 0.1),
    "rate_8khz": (_rate_8k, None, SECONDS - 0.1),
    "rate_96khz": (_rate_96k, None, SECONDS - 0.1),
    "six_channels": (_six_channels, None, SECONDS - 0.1),
    "all_silent": (_silent, r"audio is silent", 0),
    "nan_samples": (_nan, r"NaN or infinite", 0),
    "inf_samples": (_inf, r"NaN or infinite", 0),
    "too_short": (_too_short, r"too short", 0),
    "one_hour": (_one_hour, None, 3599.0),
    "spaces_and_non_ascii_path": (_odd_name, None, SECONDS - 0.1),
    "lying_wav_header": (_huge_header, None, 0.4),
}


def make_bad_audio(folder: Path, kinds: list[str] | None = None) -> list[BadAudio]:
    """Write every kind (or ``kinds``) of bad input into ``folder``; return them in order."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = []
    for kind in kinds or list(KINDS):
        writer, error, min_seconds = KINDS[kind]
        corpus.append(BadAudio(kind, writer(folder), error, min_seconds))
    return corpus
