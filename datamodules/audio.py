"""The only place that decodes audio.

soundfile decodes (wav/flac/ogg/mp3 through libsndfile), we downmix to mono, and torchaudio
resamples. Training (through the cache) and prediction both call :func:`load_audio`, so they see
identical input.
Every failure is an :class:`AudioError` whose message is one line naming the file and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

#: Files larger than this are refused before decoding (a 1 h 48 kHz stereo float wav is ~1.4 GB).
MAX_FILE_BYTES = 2 * 1024**3
#: Anything quieter than this RMS (about -100 dBFS) counts as digital silence.
SILENCE_RMS = 1e-5
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".mp3",
    ".au",
    ".aiff",
    ".aif",
    ".opus",
)


class AudioError(ValueError):
    """Audio that cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header says. ``frames`` may be an estimate for mp3."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise AudioError(
            f"{path}: file too large ({size / 1e9:.1f} GB > {MAX_FILE_BYTES / 1e9:.1f} GB)"
        )
    return path


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    # libsndfile reports an unrecognised mp3 as a missing file; we already know the file exists.
    if "is not a regular file (possibly a pipe?)" in text:
        return "format not recognised or file corrupt"
    return text


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding the samples."""
    path = _check_path(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(f"{path}: not a readable audio file ({_one_line(err)})") from err
    return AudioInfo(
        sample_rate=int(info.samplerate), channels=int(info.channels), frames=int(info.frames)
    )


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``wave`` (..., time) from ``orig_sr`` to ``new_sr`` Hz (torchaudio sinc)."""
    if orig_sr == new_sr:
        return wave
    return AF.resample(wave, orig_sr, new_sr)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    min_duration: float = 0.0,
    allow_silence: bool = True,
) -> torch.Tensor:
    """Decode ``path`` to a mono float32 waveform at ``sample_rate`` Hz.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3, au, aiff).
        sample_rate: target rate in Hz.
        offset: start, in seconds from the beginning of the file.
        duration: seconds to read from ``offset``; ``None`` reads to the end.
        min_duration: refuse audio shorter than this many seconds (after cropping).
        allow_silence: when False, refuse digitally silent audio.

    Returns:
        Tensor of shape (samples,), float32 in [-1, 1].

    Raises:
        AudioError: missing, empty, corrupt, wrong-format, too short, silent or non-finite audio.
    """
    info = audio_info(path)
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioError(
            f"{path}: invalid header ({info.sample_rate} Hz, {info.channels} channels)"
        )
    if offset < 0:
        raise AudioError(f"{path}: negative offset {offset}")
    start = int(round(offset * info.sample_rate))
    stop = None if duration is None else start + int(round(duration * info.sample_rate))
    try:
        with sf.SoundFile(str(path)) as f:
            if start:
                f.seek(min(start, max(f.frames, 0)))
            frames = -1 if stop is None else stop - start
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"{path}: cannot decode ({_one_line(err)})") from err
    if data.size == 0:
        where = f" at offset {offset:g} s" if offset else ""
        raise AudioError(f"{path}: no audio samples{where}")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    mono = torch.from_numpy(data.mean(axis=1, dtype=np.float32))
    wave = resample(mono, info.sample_rate, sample_rate).clamp_(-1.0, 1.0)
    seconds = wave.numel() / sample_rate
    if seconds < min_duration:
        raise AudioError(f"{path}: too short ({seconds:.2f} s < {min_duration:g} s)")
    if not allow_silence and float(wave.pow(2).mean().sqrt()) < SILENCE_RMS:
        raise AudioError(f"{path}: audio is silent")
    return wave


def fix_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the last axis of ``wave`` to exactly ``length`` samples."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - n))


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start indices of windows of ``window`` samples every ``hop`` samples, covering the end.

    A clip shorter than one window gets a single window at 0 (it is zero-padded); otherwise the last
    window is aligned to the end so no tail is dropped.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def frame_windows(wave: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Split a (samples,) waveform into (n_windows, window) windows (see window_starts)."""
    return torch.stack(
        [fix_length(wave[s : s + window], window) for s in window_starts(wave.numel(), window, hop)]
    )


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has an audio extension this module decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS
