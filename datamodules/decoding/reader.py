"""Which decoder reads a file, chosen by content rather than by name. soundfile (libsndfile: wav,
flac, ogg Vorbis/Opus, mp3, aiff, au, caf, ...) is the fast path and is tried first; whatever it
cannot open, or fails to decode, goes to PyAV (:mod:`datamodules.decoding.pyav_reader`). Either
way the channels are averaged to mono: both yield (rate, mono float32) blocks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from datamodules.decoding.files import AudioError, AudioInfo, check_path, one_line
from datamodules.decoding.pyav_reader import NotOpened, av_blocks, av_info, is_mpeg_audio

#: libsndfile reads mp3 in pieces of at least this many frames: its mp3 reader (libmpg123) can
#: glitch at a read boundary (docs/reliability.md), so a streamed mp3 shorter than this is read in
#: one piece, exactly as :func:`load_audio` reads it (~95 s at 44.1 kHz; 32 MB of stereo float32).
MP3_READ_FRAMES = 1 << 22


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding the samples (soundfile, else PyAV)."""
    path = check_path(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        try:
            return av_info(path)
        except NotOpened:
            raise AudioError(f"{path}: not a readable audio file ({one_line(err)})") from err
    if info.format in ("MP3", "MPEG") and not is_mpeg_audio(path):
        # libsndfile takes any *.mp3 for MPEG audio and its decoder resyncs through whatever it
        # finds - an ADTS AAC stream named .mp3 "decodes" to a few frames of noise - so FFmpeg's
        # content probe gets the last word on what an MPEG file really is.
        with contextlib.suppress(NotOpened, AudioError):
            return av_info(path)
    return AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        backend="soundfile",
        codec=str(info.subtype),
    )


def audio_duration(path: str | os.PathLike) -> float:
    """Duration of ``path`` in seconds from its header (no decoding; an estimate for mp3 and some
    containers). Raises :class:`AudioError` like :func:`audio_info`."""
    return audio_info(path).duration


def checked_info(path: str | os.PathLike, offset: float) -> AudioInfo:
    info = audio_info(path)
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioError(
            f"{path}: invalid header ({info.sample_rate} Hz, {info.channels} channels)"
        )
    if offset < 0:
        raise AudioError(f"{path}: negative offset {offset}")
    return info


def sf_blocks(
    path: Path, offset: float, duration: float | None, block_frames: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """As :func:`av_blocks`, through libsndfile (which raises on what it cannot read)."""
    with sf.SoundFile(str(path)) as f:
        rate = int(f.samplerate)
        start = min(int(round(offset * rate)), max(f.frames, 0))
        if start and f.format == "MP3":
            # No seek in mp3: libmpg123 lands without the bit reservoir of the frames before, so
            # the first frames decode wrong (and it says so on stderr). Decoding from the start
            # and dropping costs ~1 ms a second; few, large reads, since libsndfile's mp3 reader
            # also glitches at some read boundaries (docs/reliability.md).
            while start:
                start -= len(f.read(frames=min(start, 1 << 22), dtype="float32"))
        elif start:
            f.seek(start)
        remaining = -1 if duration is None else int(round(duration * rate))
        if block_frames is not None and f.format == "MP3":
            block_frames = max(block_frames, MP3_READ_FRAMES)  # few read boundaries (see above)
        while True:
            want = remaining if block_frames is None or 0 <= remaining < block_frames else None
            n = block_frames if want is None else want
            data = f.read(frames=n, dtype="float32", always_2d=True)
            if not len(data):
                return
            if not np.isfinite(data).all():
                raise AudioError(f"{path}: contains NaN or infinite samples")
            yield rate, data.mean(axis=1, dtype=np.float32)
            if remaining >= 0:
                remaining -= len(data)
            if block_frames is None or remaining == 0 or len(data) < n:
                return


def source_blocks(
    path: Path,
    info: AudioInfo,
    offset: float,
    duration: float | None,
    block_frames: int | None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(rate, mono float32) blocks from the backend that read the header; a file libsndfile
    opened but could not decode is handed to PyAV if nothing was produced yet."""
    if info.backend == "pyav":
        yield from av_blocks(path, offset, duration, block_frames)
        return
    produced = False
    try:
        for block in sf_blocks(path, offset, duration, block_frames):
            produced = True
            yield block
        return
    except AudioError:
        raise
    except Exception as err:  # LibsndfileError/RuntimeError mid-file
        sf_error = err
        if produced:
            raise AudioError(f"{path}: cannot decode ({one_line(err)})") from err
    try:
        blocks = av_blocks(path, offset, duration, block_frames)
        first = next(blocks, None)
    except (NotOpened, AudioError):
        raise AudioError(f"{path}: cannot decode ({one_line(sf_error)})") from sf_error
    if first is not None:
        yield first
        yield from blocks
