"""Decoding through PyAV (the FFmpeg libraries inside its wheel): m4a/AAC, ALAC, WMA, Opus/Vorbis in
WebM/Matroska, the audio track of MP4/MKV/MOV video, AC-3, WavPack, ... A container's first audio
stream is used. PyAV is imported on first use: most runs only ever meet wav/flac/mp3.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datamodules.decoding.files import AudioError, AudioInfo, one_line

if TYPE_CHECKING:
    import av.container
    import av.stream

#: PyAV offsets below this many seconds are reached by decoding from the start (sample-exact and
#: cheap); longer ones seek, which is exact to a container timestamp tick (1 ms in Matroska).
SEEK_MIN_SECONDS = 10.0

#: Seek this much before the offset so the decoder has warmed up (AAC/Opus overlap the previous
#: frame) by the time the first kept sample comes out.
SEEK_PREROLL_SECONDS = 1.0

#: Decoded samples past the length a stream header declares in samples are codec padding (an
#: AAC encoder pads the last frame to 1024) and are dropped - unless there are more than this
#: many, in which case the header was wrong and everything is kept.
TAIL_SLACK_FRAMES = 8192

#: Give up on a PyAV stream once this many packets failed to decode and they outnumber good ones.
MAX_BAD_PACKETS = 32

#: Codec tags of DRM-protected tracks (iTunes FairPlay audio/video, encrypted ISO BMFF entries).
DRM_CODEC_TAGS = frozenset({"drms", "drmi", "enca", "encv"})


class NotOpened(Exception):
    """PyAV is missing or FFmpeg recognises no container in the file."""


def open_av(path: Path) -> av.container.InputContainer:
    try:
        import av
    except ImportError as err:
        raise NotOpened("PyAV is not installed: pip install av") from err
    try:
        # "file:" so a name like "concat:a|b" or "http:x" is never taken for another protocol;
        # the whitelist keeps playlist-like demuxers (hls, concat) from fetching anything else.
        return av.open(
            "file:" + str(path),
            container_options={"protocol_whitelist": "file"},
            metadata_errors="replace",  # badly encoded tags must not make the audio unreadable
        )
    except Exception as err:  # av.error.FFmpegError, OSError, UnicodeError
        raise NotOpened(one_line(err)) from err


def audio_stream(container: av.container.InputContainer, path: Path) -> av.stream.Stream:
    """The first audio stream, refusing containers without one and DRM-protected tracks."""
    if not container.streams.audio:
        raise AudioError(f"{path}: no audio stream")
    stream = container.streams.audio[0]
    tag = (stream.codec_tag or "").strip("\x00 ").lower()
    if tag in DRM_CODEC_TAGS:
        raise AudioError(f"{path}: DRM-protected ({tag}), cannot decode")
    if stream.codec_context is None or not stream.codec_context.name:
        raise AudioError(f"{path}: cannot decode (no decoder for codec tag {tag or '?'})")
    return stream


def declared_seconds(stream: av.stream.Stream) -> float | None:
    """The stream's own duration in seconds, if its header declares one."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def is_mpeg_audio(path: Path) -> bool:
    """False only when FFmpeg's content probe finds another container (True if it finds none)."""
    try:
        container = open_av(path)
    except NotOpened:
        return True
    with container:
        return container.format.name == "mp3"  # FFmpeg's demuxer for MPEG layer I/II/III


def av_info(path: Path) -> AudioInfo:
    container = open_av(path)
    with container:
        stream = audio_stream(container, path)
        codec = stream.codec_context
        seconds = declared_seconds(stream)
        if seconds is None and container.duration:  # e.g. Matroska: only the container knows
            seconds = container.duration / 1_000_000  # AV_TIME_BASE
        rate = int(codec.sample_rate or 0)
        return AudioInfo(
            sample_rate=rate,
            channels=int(codec.channels or 0),
            frames=int(round((seconds or 0.0) * rate)),
            backend="pyav",
            codec=str(codec.name),
        )


#: Full-scale value of each integer sample format (libsndfile's float normalisation).
_INT_SCALE = {"u8": 128.0, "s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}


def _frame_array(frame: Any) -> np.ndarray:
    """An av.AudioFrame as a (channels, samples) float32 array in [-1, 1]."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: one plane of interleaved samples
        data = data.reshape(-1, frame.layout.nb_channels).T
    kind = frame.format.packed.name
    if kind in _INT_SCALE:
        offset = 128.0 if kind == "u8" else 0.0
        return ((data.astype(np.float64) - offset) / _INT_SCALE[kind]).astype(np.float32)
    return data.astype(np.float32, copy=False)


def _av_frames(
    path: Path, seek_seconds: float | None
) -> Iterator[tuple[int | None, int, np.ndarray]]:
    """Decode the first audio stream: (sample index of the frame's first sample, rate in Hz,
    (channels, samples) float32). Without a seek the index counts decoded samples from 0; after a
    seek it comes from each frame's timestamp (None for a frame without one)."""
    import av

    container = open_av(path)
    with container:
        stream = audio_stream(container, path)
        origin = stream.start_time or 0  # the timestamp of sample 0
        if seek_seconds is not None:
            target = origin + int(seek_seconds / stream.time_base)
            # not seekable: still at the start, and the first frame's timestamp says so
            with contextlib.suppress(av.error.FFmpegError):
                container.seek(target, stream=stream, backward=True)
        bad = good = 0
        first_error: Exception | None = None
        position: int | None = None if seek_seconds is not None else 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as err:
                    # one corrupt packet costs one frame, as libsndfile's mp3 decoder does; a stream
                    # that is mostly undecodable (encrypted, wrong codec) is refused
                    bad += 1
                    first_error = first_error or err
                    if bad >= MAX_BAD_PACKETS and bad > good:
                        raise AudioError(
                            f"{path}: cannot decode ({bad} of {bad + good} packets failed: "
                            f"{one_line(first_error)})"
                        ) from err
                    continue
                good += 1
                for frame in frames:
                    if seek_seconds is not None:
                        position = None
                        if frame.pts is not None:
                            seconds = float((frame.pts - origin) * stream.time_base)
                            position = int(round(seconds * frame.sample_rate))
                    yield position, frame.sample_rate, _frame_array(frame)
                    if position is not None:
                        position += frame.samples
        except av.error.FFmpegError as err:
            # the demuxer gave up (a truncated file): keep what decoded, like libsndfile does
            if good == 0:
                raise AudioError(f"{path}: cannot decode ({one_line(err)})") from err
        if good == 0 and first_error is not None:
            raise AudioError(f"{path}: cannot decode ({one_line(first_error)})")


def av_blocks(
    path: Path, offset: float, duration: float | None, block_frames: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """(rate, mono float32 samples) blocks of ``block_frames`` (the last may be shorter; ``None``:
    one block) of [offset, offset + duration) s of the first audio stream."""
    try:
        container = open_av(path)
    except NotOpened as err:  # it opened for the header a moment ago
        raise AudioError(f"{path}: cannot decode ({err})") from err
    with container:
        stream = audio_stream(container, path)
        # Only a length counted in samples is exact (MP4 edit lists, WavPack, Ogg granules); the
        # others (raw AC-3/ADTS, from the bitrate) are estimates, and trimming to them would cut.
        exact = stream.time_base == Fraction(1, stream.codec_context.sample_rate or 1)
        declared = declared_seconds(stream) if exact else None
    seek = offset - SEEK_PREROLL_SECONDS if offset >= SEEK_MIN_SECONDS else None
    frames = _av_frames(path, seek)
    try:
        yield from _trimmed_blocks(path, frames, offset, duration, declared, seek, block_frames)
    finally:
        frames.close()  # closes the container now, not when the generator is collected


def _trimmed_blocks(
    path: Path,
    frames: Iterator[tuple[int | None, int, np.ndarray]],
    offset: float,
    duration: float | None,
    declared: float | None,
    seek: float | None,
    block_frames: int | None,
) -> Iterator[tuple[int, np.ndarray]]:
    first = next(frames, None)
    if first is None:
        return
    rate = first[1]
    start = int(round(offset * rate))
    if seek is not None and (first[0] is None or first[0] > start):
        # no timestamp to locate the frame, or the seek overshot: decode from the start
        frames.close()
        again = _av_frames(path, None)
        try:
            yield from _trimmed_blocks(path, again, offset, duration, declared, None, block_frames)
        finally:
            again.close()
        return
    stop = None if duration is None else start + int(round(duration * rate))
    # Drop codec padding past the declared length (see TAIL_SLACK_FRAMES).
    end = None if declared is None else int(round(declared * rate))
    tail: list[np.ndarray] = []
    n_tail = 0
    pending: list[np.ndarray] = []
    n_pending = 0
    position = first[0] or 0
    started = False
    for reported, frame_rate, data in itertools.chain([first], frames):
        if frame_rate != rate:
            raise AudioError(
                f"{path}: cannot decode (sample rate changes mid-stream, {rate} → {frame_rate} Hz)"
            )
        if seek is not None and not started and reported is not None:
            # After a seek, frames are placed by their timestamps until the first kept one, then
            # by counting: the first frame after a seek may have had its start trimmed (Opus
            # pre-skip in Matroska) without its timestamp saying so, and the preroll skips it.
            position = reported
        lo, hi = position, position + data.shape[1]
        position = hi
        keep_lo, keep_hi = max(lo, start), hi if stop is None else min(hi, stop)
        if keep_hi > keep_lo:
            started = True
            piece = data[:, keep_lo - lo : keep_hi - lo]
            if not np.isfinite(piece).all():
                raise AudioError(f"{path}: contains NaN or infinite samples")
            mono = piece.mean(axis=0, dtype=np.float32)
            if end is not None:
                inside = max(0, min(mono.size, end - keep_lo))
                if inside < mono.size or tail:
                    tail.append(mono[inside:])
                    n_tail += mono.size - inside
                    mono = mono[:inside]
                if n_tail > TAIL_SLACK_FRAMES:  # the header undercounts: keep everything
                    mono = np.concatenate([mono, *tail])
                    tail, n_tail, end = [], 0, None
            if mono.size:
                pending.append(mono)
                n_pending += mono.size
            while block_frames is not None and n_pending >= block_frames:
                joined = np.concatenate(pending)
                yield rate, joined[:block_frames]
                pending, n_pending = [joined[block_frames:]], n_pending - block_frames
        if stop is not None and hi >= stop:
            break
    if n_pending:
        yield rate, np.concatenate(pending)
