"""The only place that decodes audio: :func:`load_audio` for a whole file (or a part of it),
:func:`stream_audio` for the same waveform in blocks, in bounded memory.

Two decoders, chosen by content rather than by name: soundfile first, PyAV (FFmpeg) for what it
cannot read (``decoding/reader.py``). The channels are averaged to mono and soxr resamples
(``decoding/resampling.py``), so training (through the cache) and prediction, which both call
:func:`load_audio`, see identical input; both paths feed one ``soxr.ResampleStream``, whose output
does not depend on how its input is chunked. Waveforms are float32 numpy arrays; this module and
the ones it uses import no torch (the runtime has none). Every failure is an :class:`AudioError`
whose message is one line naming the file and the reason.

The pieces live in ``datamodules/decoding/`` (files and errors, the PyAV and soundfile readers,
resampling, raw bitstreams) and ``datamodules/windows.py``; their public names are re-exported
here, so ``from datamodules.audio import ...`` is the one import callers need.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from datamodules.decoding.bitstream import decoded_samples, encoded_packets
from datamodules.decoding.files import (
    AUDIO_EXTENSIONS,
    MAX_FILE_BYTES,
    SIDECAR_EXTENSIONS,
    AudioError,
    AudioInfo,
    classify_path,
)
from datamodules.decoding.pyav_reader import SEEK_MIN_SECONDS
from datamodules.decoding.reader import (
    MP3_READ_FRAMES,
    audio_duration,
    audio_info,
    checked_info,
    source_blocks,
)
from datamodules.decoding.resampling import SOXR_QUALITY, reblocked, resample, resampled
from datamodules.windows import fix_length, frame_windows, window_starts, window_weights

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_FILE_BYTES",
    "MP3_READ_FRAMES",
    "SEEK_MIN_SECONDS",
    "SIDECAR_EXTENSIONS",
    "SILENCE_RMS",
    "SOXR_QUALITY",
    "STREAM_BLOCK_SECONDS",
    "AudioError",
    "AudioInfo",
    "audio_duration",
    "audio_info",
    "classify_path",
    "decoded_samples",
    "encoded_packets",
    "fix_length",
    "frame_windows",
    "load_audio",
    "resample",
    "stream_audio",
    "window_starts",
    "window_weights",
]

#: Anything quieter than this RMS (about -100 dBFS) counts as digital silence.
SILENCE_RMS = 1e-5

#: Default length of a :func:`stream_audio` block in seconds.
STREAM_BLOCK_SECONDS = 60.0


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    min_duration: float = 0.0,
    allow_silence: bool = True,
) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sample_rate`` Hz.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3, au, aiff) or FFmpeg (through
            PyAV) decodes (m4a/AAC/ALAC, wma, webm/mkv/mka, mp4/mov audio tracks, ac3, ...); the
            format is found from the content, not the extension.
        sample_rate: target rate in Hz.
        offset: start, in seconds from the beginning of the file.
        duration: seconds to read from ``offset``; ``None`` reads to the end.
        min_duration: refuse audio shorter than this many seconds (after cropping).
        allow_silence: when False, refuse digitally silent audio.

    Returns:
        Array of shape (samples,), float32 in [-1, 1].

    Raises:
        AudioError: missing, empty, corrupt, wrong-format, DRM-protected, no audio stream, too
            short, silent or non-finite audio.
    """
    info = checked_info(path, offset)
    path = Path(path)
    blocks = source_blocks(path, info, offset, duration, block_frames=None)
    pieces = list(resampled(path, blocks, sample_rate))
    if not pieces:
        where = f" at offset {offset:g} s" if offset else ""
        raise AudioError(f"{path}: no audio samples{where}")
    wave = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    seconds = wave.size / sample_rate
    if seconds < min_duration:
        raise AudioError(f"{path}: too short ({seconds:.2f} s < {min_duration:g} s)")
    if (
        not allow_silence
        and float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) < SILENCE_RMS
    ):
        raise AudioError(f"{path}: audio is silent")
    return wave


def stream_audio(
    path: str | os.PathLike,
    sample_rate: int,
    block_seconds: float = STREAM_BLOCK_SECONDS,
    offset: float = 0.0,
    duration: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block, in memory bounded by the block size, not the file length.

    The header is read (and its errors raised) at the call; decoding happens as blocks are taken.
    Concatenated, the blocks equal ``load_audio(path, sample_rate, offset, duration)``: the same
    decoder, downmix and ``soxr.ResampleStream``, fed in blocks instead of in one piece, which
    gives the same samples (max abs difference 0 in the tests). One exception: libsndfile reads an
    mp3 longer than :data:`MP3_READ_FRAMES` in pieces, and its decoder may glitch at a piece
    boundary (docs/reliability.md).

    Args:
        path, sample_rate, offset, duration: as for :func:`load_audio`.
        block_seconds: length of each block in seconds (at ``sample_rate``).

    Yields:
        Arrays of shape (round(block_seconds * sample_rate),), float32 in [-1, 1], at
        ``sample_rate`` Hz; the last block holds the remainder and may be shorter.

    Raises:
        AudioError: as :func:`load_audio` (but never too short / silent: no whole-file checks);
            header errors at the call, decoding errors (NaN, corrupt data) while iterating.
    """
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    info = checked_info(path, offset)
    path = Path(path)
    source_block = max(1, int(round(block_seconds * info.sample_rate)))
    out_block = max(1, int(round(block_seconds * sample_rate)))
    blocks = source_blocks(path, info, offset, duration, block_frames=source_block)
    return reblocked(path, blocks, sample_rate, out_block, offset)
