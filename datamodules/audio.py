"""The only place that decodes audio.

Two decoders, chosen by content rather than by name. soundfile (libsndfile: wav, flac, ogg
Vorbis/Opus, mp3, aiff, au, caf, ...) is the fast path and is tried first; whatever it cannot
open, or fails to decode, goes to PyAV (the FFmpeg libraries inside its wheel): m4a/AAC, ALAC,
WMA, Opus/Vorbis in WebM/Matroska, the audio track of MP4/MKV/MOV video, AC-3, WavPack, ... A
container's first audio stream is used. Either way the channels are averaged to mono and
soxr (libsoxr, the resampler librosa uses) resamples, so training (through the cache) and
prediction, which both call :func:`load_audio`, see identical input. :func:`stream_audio` yields
the same waveform in blocks, in bounded memory, for files too long to decode whole: both feed one
``soxr.ResampleStream``, whose output does not depend on how its input is chunked.
Waveforms are float32 numpy arrays; this module imports no torch (the runtime has none).
Every failure is an :class:`AudioError` whose message is one line naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import soundfile as sf
import soxr

if TYPE_CHECKING:  # PyAV is imported on first use: most runs only ever meet wav/flac/mp3
    import av.container
    import av.stream

#: Files larger than this are refused before decoding (a 1 h 48 kHz stereo float wav is ~1.4 GB).
MAX_FILE_BYTES = 2 * 1024**3
#: Anything quieter than this RMS (about -100 dBFS) counts as digital silence.
SILENCE_RMS = 1e-5
AUDIO_EXTENSIONS: tuple[str, ...] = (
    # libsndfile
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".mp3",
    ".au",
    ".aiff",
    ".aif",
    ".opus",
    ".caf",
    ".w64",
    # PyAV (FFmpeg); ALAC lives in .m4a (or .caf)
    ".m4a",
    ".m4b",
    ".m4p",  # usually DRM-protected: listed so the user is told so instead of it being ignored
    ".mp4",
    ".mov",
    ".aac",
    ".alac",
    ".wma",
    ".asf",
    ".webm",
    ".mka",
    ".mkv",
    ".ac3",
    ".eac3",
    ".mp2",
    ".wv",
    ".ape",
)
#: Files that travel with music (covers, cue sheets, playlists, rip logs): not audio, not errors.
SIDECAR_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".cue",
    ".nfo",
    ".lrc",
    ".m3u",
    ".m3u8",
    ".txt",
    ".log",
    ".pdf",
    ".sfv",
    ".md5",
)
#: Default length of a :func:`stream_audio` block in seconds.
STREAM_BLOCK_SECONDS = 60.0
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
#: soxr's quality preset ("HQ": 20-bit precision, the preset librosa's default ``soxr_hq`` uses).
SOXR_QUALITY = "HQ"
#: libsndfile reads mp3 in pieces of at least this many frames: its mp3 reader (libmpg123) can
#: glitch at a read boundary (docs/reliability.md), so a streamed mp3 shorter than this is read in
#: one piece, exactly as :func:`load_audio` reads it (~95 s at 44.1 kHz; 32 MB of stereo float32).
MP3_READ_FRAMES = 1 << 22


class AudioError(ValueError):
    """Audio that cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header says. ``frames`` may be an estimate (mp3, and PyAV containers, where it
    comes from the stream's or the container's declared duration).

    ``backend`` is the decoder that read the header: ``"soundfile"`` or ``"pyav"``; ``codec`` is
    the codec (PyAV) or libsndfile subtype (soundfile) name.
    """

    sample_rate: int
    channels: int
    frames: int
    backend: str = "soundfile"
    codec: str = ""

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
    # FFmpeg errors carry the url in str(err); strerror is just the reason.
    text = getattr(err, "strerror", None) or str(err)
    text = " ".join(str(text).split()) or type(err).__name__
    # libsndfile reports an unrecognised mp3 as a missing file; we already know the file exists.
    if "is not a regular file (possibly a pipe?)" in text:
        return "format not recognised or file corrupt"
    return text


# ---------------------------------------------------------------------------------------------
# PyAV


class _NotOpened(Exception):
    """PyAV is missing or FFmpeg recognises no container in the file."""


def _open_av(path: Path) -> av.container.InputContainer:
    try:
        import av
    except ImportError as err:
        raise _NotOpened("PyAV is not installed: pip install av") from err
    try:
        # "file:" so a name like "concat:a|b" or "http:x" is never taken for another protocol;
        # the whitelist keeps playlist-like demuxers (hls, concat) from fetching anything else.
        return av.open(
            "file:" + str(path),
            container_options={"protocol_whitelist": "file"},
            metadata_errors="replace",  # badly encoded tags must not make the audio unreadable
        )
    except Exception as err:  # av.error.FFmpegError, OSError, UnicodeError
        raise _NotOpened(_one_line(err)) from err


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.stream.Stream:
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


def _declared_seconds(stream: av.stream.Stream) -> float | None:
    """The stream's own duration in seconds, if its header declares one."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _is_mpeg_audio(path: Path) -> bool:
    """False only when FFmpeg's content probe finds another container (True if it finds none)."""
    try:
        container = _open_av(path)
    except _NotOpened:
        return True
    with container:
        return container.format.name == "mp3"  # FFmpeg's demuxer for MPEG layer I/II/III


def _av_info(path: Path) -> AudioInfo:
    container = _open_av(path)
    with container:
        stream = _audio_stream(container, path)
        codec = stream.codec_context
        seconds = _declared_seconds(stream)
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

    container = _open_av(path)
    with container:
        stream = _audio_stream(container, path)
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
                            f"{_one_line(first_error)})"
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
                raise AudioError(f"{path}: cannot decode ({_one_line(err)})") from err
        if good == 0 and first_error is not None:
            raise AudioError(f"{path}: cannot decode ({_one_line(first_error)})")


def _av_blocks(
    path: Path, offset: float, duration: float | None, block_frames: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """(rate, mono float32 samples) blocks of ``block_frames`` (the last may be shorter; ``None``:
    one block) of [offset, offset + duration) s of the first audio stream."""
    try:
        container = _open_av(path)
    except _NotOpened as err:  # it opened for the header a moment ago
        raise AudioError(f"{path}: cannot decode ({err})") from err
    with container:
        stream = _audio_stream(container, path)
        # Only a length counted in samples is exact (MP4 edit lists, WavPack, Ogg granules); the
        # others (raw AC-3/ADTS, from the bitrate) are estimates, and trimming to them would cut.
        exact = stream.time_base == Fraction(1, stream.codec_context.sample_rate or 1)
        declared = _declared_seconds(stream) if exact else None
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


# ---------------------------------------------------------------------------------------------
# soundfile


def _sf_blocks(
    path: Path, offset: float, duration: float | None, block_frames: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """As :func:`_av_blocks`, through libsndfile (which raises on what it cannot read)."""
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


def _source_blocks(
    path: Path,
    info: AudioInfo,
    offset: float,
    duration: float | None,
    block_frames: int | None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(rate, mono float32) blocks from the backend that read the header; a file libsndfile
    opened but could not decode is handed to PyAV if nothing was produced yet."""
    if info.backend == "pyav":
        yield from _av_blocks(path, offset, duration, block_frames)
        return
    produced = False
    try:
        for block in _sf_blocks(path, offset, duration, block_frames):
            produced = True
            yield block
        return
    except AudioError:
        raise
    except Exception as err:  # LibsndfileError/RuntimeError mid-file
        sf_error = err
        if produced:
            raise AudioError(f"{path}: cannot decode ({_one_line(err)})") from err
    try:
        blocks = _av_blocks(path, offset, duration, block_frames)
        first = next(blocks, None)
    except (_NotOpened, AudioError):
        raise AudioError(f"{path}: cannot decode ({_one_line(sf_error)})") from sf_error
    if first is not None:
        yield first
        yield from blocks


# ---------------------------------------------------------------------------------------------
# Public API


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding the samples (soundfile, else PyAV)."""
    path = _check_path(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        try:
            return _av_info(path)
        except _NotOpened:
            raise AudioError(f"{path}: not a readable audio file ({_one_line(err)})") from err
    if info.format in ("MP3", "MPEG") and not _is_mpeg_audio(path):
        # libsndfile takes any *.mp3 for MPEG audio and its decoder resyncs through whatever it
        # finds - an ADTS AAC stream named .mp3 "decodes" to a few frames of noise - so FFmpeg's
        # content probe gets the last word on what an MPEG file really is.
        with contextlib.suppress(_NotOpened, AudioError):
            return _av_info(path)
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


def classify_path(path: str | os.PathLike) -> Literal["audio", "sidecar", "hidden", "unknown"]:
    """What a file in a music folder is, by name only: ``"hidden"`` (name starts with ".", e.g.
    macOS ``._song.m4a`` resource forks), ``"audio"`` (an :data:`AUDIO_EXTENSIONS` suffix),
    ``"sidecar"`` (covers, cue sheets, playlists, logs: :data:`SIDECAR_EXTENSIONS`) or
    ``"unknown"``. Folder runs decode only ``"audio"`` and count the rest as not audio."""
    name = Path(path).name
    if name.startswith("."):
        return "hidden"
    suffix = Path(name).suffix.lower()
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in SIDECAR_EXTENSIONS:
        return "sidecar"
    return "unknown"


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a (samples,) float32 waveform from ``orig_sr`` to ``new_sr`` Hz with soxr, as
    :func:`load_audio` does (not clamped)."""
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == new_sr:
        return wave
    stream = soxr.ResampleStream(orig_sr, new_sr, 1, dtype="float32", quality=SOXR_QUALITY)
    head = stream.resample_chunk(np.ascontiguousarray(wave), last=False)
    return np.concatenate([head, stream.resample_chunk(np.zeros(0, np.float32), last=True)])


def _resampled(
    path: Path, blocks: Iterator[tuple[int, np.ndarray]], new_sr: int
) -> Iterator[np.ndarray]:
    """Resample a stream of (rate, mono float32) blocks to ``new_sr`` and clamp to [-1, 1].

    :func:`load_audio` and :func:`stream_audio` both go through here: one
    ``soxr.ResampleStream`` per file, fed block by block and flushed at the end, whose output is
    the same, bit for bit, however the input is cut into blocks (tested). So the stream,
    concatenated, is the whole-file decode.
    """
    stream: soxr.ResampleStream | None = None
    rate = None
    for block_rate, block in blocks:
        if rate is None:
            rate = block_rate
            if rate != new_sr:
                stream = soxr.ResampleStream(rate, new_sr, 1, dtype="float32", quality=SOXR_QUALITY)
        elif block_rate != rate:
            raise AudioError(f"{path}: cannot decode (sample rate changes, {rate} → {block_rate})")
        if stream is None:
            out = np.array(block, dtype=np.float32)  # a copy: never clamp the decoder's buffer
        else:
            out = stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=False)
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)
    if stream is not None:
        out = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)


def _checked_info(path: str | os.PathLike, offset: float) -> AudioInfo:
    info = audio_info(path)
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioError(
            f"{path}: invalid header ({info.sample_rate} Hz, {info.channels} channels)"
        )
    if offset < 0:
        raise AudioError(f"{path}: negative offset {offset}")
    return info


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
    info = _checked_info(path, offset)
    path = Path(path)
    blocks = _source_blocks(path, info, offset, duration, block_frames=None)
    pieces = list(_resampled(path, blocks, sample_rate))
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
    info = _checked_info(path, offset)
    path = Path(path)
    source_block = max(1, int(round(block_seconds * info.sample_rate)))
    out_block = max(1, int(round(block_seconds * sample_rate)))
    blocks = _source_blocks(path, info, offset, duration, block_frames=source_block)
    return _stream(path, blocks, sample_rate, out_block, offset)


def _stream(
    path: Path,
    blocks: Iterator[tuple[int, np.ndarray]],
    sample_rate: int,
    out_block: int,
    offset: float,
) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    n_pending = 0
    produced = False
    for piece in _resampled(path, blocks, sample_rate):
        pending.append(piece)
        n_pending += piece.size
        while n_pending >= out_block:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            produced = True
            yield joined[:out_block].copy()  # a copy: do not keep the rest alive through a view
            pending, n_pending = [joined[out_block:]], n_pending - out_block
    if n_pending:
        produced = True
        yield np.concatenate(pending)
    if not produced:
        where = f" at offset {offset:g} s" if offset else ""
        raise AudioError(f"{path}: no audio samples{where}")


def fix_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis of ``wave`` to exactly ``length`` samples."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, length - n)]
    return np.pad(wave, pad)


def window_starts(n_samples: int, window: int, hop: int, min_tail: int = 0) -> list[int]:
    """Start indices of windows of ``window`` samples every ``hop`` samples, covering the end.

    A clip shorter than one window gets a single window at 0 (it is zero-padded); otherwise, when
    the windows on the hop grid leave a tail uncovered, one more window is aligned to the end, but
    only if that tail holds more than ``min_tail`` samples: a window that adds 13 ms of new audio
    would repeat its neighbour and count it twice (every GTZAN clip is 30.013 s).
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if n_samples - (starts[-1] + window) > max(min_tail, 0):
        starts.append(n_samples - window)
    return starts


def window_weights(starts: list[int], n_samples: int, window: int, hop: int) -> list[float]:
    """Weight of each window (``starts``, a subset of :func:`window_starts`) in a clip average.

    Each window on the hop grid adds ``hop`` samples of new audio and weighs 1; the end-aligned
    last window adds only the tail the grid left, so it weighs that tail as a share of ``hop``.
    That way every second of audio counts once per hop, the tail no more than the rest.
    """
    if n_samples <= window:
        return [1.0] * len(starts)
    last_on_grid = (n_samples - window) // hop * hop
    return [
        (s - last_on_grid) / hop if s % hop and s == n_samples - window else 1.0 for s in starts
    ]


def frame_windows(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Split a (samples,) waveform into (n_windows, window) windows (see window_starts)."""
    return np.stack(
        [fix_length(wave[s : s + window], window) for s in window_starts(wave.size, window, hop)]
    )


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has an audio extension this module decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def decoded_samples(path: str | os.PathLike, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """The raw decoded samples of ``path``, block by block: every channel, the file's own rate,
    no downmix, no resampling, no clamping; by the decoder :func:`audio_info` picks.

    For checks that two files carry the same audio (a file re-tagged against its original): the
    same bitstream decodes to the same blocks, bit for bit, lossy codecs included.

    Yields:
        soundfile: (frames, channels) arrays in a type that holds the decoder's values exactly
        (int32 for 32-bit PCM, float64 for double, else float32); PyAV: each decoded frame's
        array as FFmpeg returns it (its own sample format).

    Raises:
        AudioError: as :func:`audio_info`, or when decoding fails.
    """
    path = _check_path(path)
    info = audio_info(path)
    try:
        if info.backend == "soundfile":
            dtype = {"PCM_32": "int32", "DOUBLE": "float64"}.get(info.codec, "float32")
            with sf.SoundFile(str(path)) as f:
                yield from f.blocks(blocksize=block_frames, dtype=dtype, always_2d=True)
            return
        container = _open_av(path)
        with container:
            stream = _audio_stream(container, path)
            for frame in container.decode(stream):
                yield frame.to_ndarray()
    except AudioError:
        raise
    except Exception as err:  # _NotOpened, LibsndfileError, av.error.FFmpegError, ...
        raise AudioError(f"{path}: cannot decode ({_one_line(err)})") from err


def encoded_packets(path: str | os.PathLike) -> Iterator[bytes]:
    """The first audio stream of ``path`` as FFmpeg demuxes it, undecoded: first the codec, rate,
    channels and the decoder's setup data (``extradata``: Vorbis/Opus headers, FLAC STREAMINFO,
    AAC config), then every packet with its timestamps. Two files with the same items decode to
    the same samples; demuxing costs a fraction of decoding (a few ms for a 30 s song).

    Raises:
        AudioError: FFmpeg cannot open the file or finds no audio stream.
    """
    path = _check_path(path)
    try:
        container = _open_av(path)
    except _NotOpened as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from err
    try:
        with container:
            stream = _audio_stream(container, path)
            codec = stream.codec_context
            yield f"{codec.name}:{codec.sample_rate}:{codec.channels}:{stream.time_base}".encode()
            yield bytes(codec.extradata or b"")
            for packet in container.demux(stream):
                if packet.size:
                    yield f"{packet.pts}:{packet.dts}:{packet.duration}".encode()
                    yield bytes(packet)
    except AudioError:
        raise
    except Exception as err:  # av.error.FFmpegError
        raise AudioError(f"{path}: cannot demux ({_one_line(err)})") from err
