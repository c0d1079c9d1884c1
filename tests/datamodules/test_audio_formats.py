"""Formats libsndfile cannot read decode through PyAV, chosen by content; long files stream.

Every file is encoded here, with PyAV's own encoders, from a known signal; a format the installed
PyAV cannot encode is skipped with the reason.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from datamodules.audio import (
    AUDIO_EXTENSIONS,
    SEEK_MIN_SECONDS,
    SIDECAR_EXTENSIONS,
    AudioError,
    audio_duration,
    audio_info,
    classify_path,
    load_audio,
    stream_audio,
)

SR = 44100
SECONDS = 3.0
#: Output rate of the comparisons (the framework's usual rate).
RATE = 16000


def _signal(seconds: float, sr: int) -> np.ndarray:
    """A deterministic, non-periodic test signal: two tones, one frequency-modulated, (samples,)."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(
        2 * np.pi * 1234 * t + 3 * np.sin(2 * np.pi * 0.7 * t)
    )
    return x.astype(np.float32)


def _require_encoder(container_format: str, codec: str, **kwargs) -> None:
    """Skip the test unless PyAV can open ``codec`` for writing into ``container_format``."""
    bit_rate = kwargs.pop("bit_rate", None)
    try:
        with av.open(io.BytesIO(), "w", format=container_format) as out:
            stream = out.add_stream(codec, **kwargs)
            if bit_rate:
                stream.bit_rate = bit_rate
            stream.codec_context.open()
    except (av.error.FFmpegError, ValueError) as err:
        pytest.skip(f"PyAV {av.__version__} cannot encode {codec} in {container_format}: {err}")


def _encode(
    path: Path,
    codec: str | None,
    x: np.ndarray,
    sr: int,
    *,
    container_format: str | None = None,
    rate: int | None = None,
    layout: str = "mono",
    bit_rate: int | None = None,
    sample_format: str | None = None,
    options: dict | None = None,
    video: bool = False,
) -> Path:
    """Encode the float signal ``x`` at ``sr`` Hz, (samples,) (copied to every channel) or
    (channels, samples), into ``path`` (``codec=None``: no audio stream); ``video`` adds a small
    mpeg4 picture stream before the audio one."""
    channels = 1 if layout == "mono" else 2
    planar = x if x.ndim == 2 else np.repeat(x[None], channels, axis=0)
    n_samples = planar.shape[1]
    with av.open(str(path), "w", format=container_format) as out:
        picture = None
        if video:
            _require_encoder(out.format.name.split(",")[0], "mpeg4", rate=10)
            picture = out.add_stream("mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        sound = None
        if codec is not None:
            kwargs = {"rate": rate or sr, "layout": layout, "options": options or {}}
            _require_encoder(out.format.name.split(",")[0], codec, bit_rate=bit_rate, **kwargs)
            sound = out.add_stream(codec, **kwargs)
            if bit_rate:
                sound.bit_rate = bit_rate
            if sample_format:  # else PyAV takes the codec's first format (u8p for WavPack)
                sound.codec_context.format = sample_format
        if picture is not None:
            for i in range(int(n_samples / sr * 10)):
                image = np.full((48, 64, 3), i * 7 % 255, dtype=np.uint8)
                out.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(picture.encode(None))
        if sound is not None:
            # when the stream rate differs from sr the encoder's own resampler converts
            for start in range(0, n_samples, 4096):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(planar[:, start : start + 4096]),
                    format="fltp",
                    layout=layout,
                )
                frame.sample_rate, frame.pts = sr, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def _similarity(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Best normalised correlation of ``a`` and ``b`` over lags within ``max_lag`` samples (codec
    delay), and that lag."""
    n = min(a.size, b.size) - 2 * max_lag
    x = a[max_lag : max_lag + n].astype(np.float64)
    best, best_lag = -1.0, 0
    for lag in range(-max_lag, max_lag + 1):
        y = b[max_lag + lag : max_lag + lag + n].astype(np.float64)
        c = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))
        if c > best:
            best, best_lag = c, lag
    return best, best_lag


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The reference signal as a float wav, and load_audio of it at RATE."""
    path = tmp_path_factory.mktemp("source") / "source.wav"
    sf.write(path, _signal(SECONDS, SR), SR, subtype="FLOAT")
    return path, load_audio(path, RATE)


#: id -> (file name, codec, encode kwargs); every one is a format libsndfile cannot read (except
#: Opus in Ogg, which newer libsndfile reads: it is here to show either decoder gives the same)
FORMATS: dict[str, tuple[str, str, dict]] = {
    "aac-m4a": ("aac.m4a", "aac", {}),
    "alac-m4a": ("alac.m4a", "alac", {}),
    "aac-adts": ("adts.aac", "aac", {"container_format": "adts"}),
    "opus-webm": ("opus.webm", "libopus", {"rate": 48000}),
    "opus-ogg": ("opus.opus", "libopus", {"rate": 48000}),
    # FFmpeg's native Vorbis encoder is "experimental" and stereo only
    "vorbis-webm": (
        "vorbis.webm",
        "vorbis",
        {"layout": "stereo", "options": {"strict": "experimental"}},
    ),
    "wma": ("wma.wma", "wmav2", {"bit_rate": 128000}),
    "ac3": ("ac3.ac3", "ac3", {}),
    "mp4-video-aac": ("video.mp4", "aac", {"video": True}),
    "mkv-video-opus": ("video.mkv", "libopus", {"rate": 48000, "video": True}),
    "mka-flac": ("flac.mka", "flac", {}),
    "wavpack": ("wavpack.wv", "wavpack", {"sample_format": "s16p"}),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_decodes_to_the_source_signal(
    tmp_path: Path, source: tuple[Path, np.ndarray], fmt: str
) -> None:
    name, codec, kwargs = FORMATS[fmt]
    path = _encode(tmp_path / name, codec, _signal(SECONDS, SR), SR, **kwargs)
    assert Path(name).suffix in AUDIO_EXTENSIONS and classify_path(path) == "audio"

    info = audio_info(path)
    assert info.sample_rate == kwargs.get("rate", SR)
    assert info.channels == (2 if kwargs.get("layout") == "stereo" else 1)
    assert abs(info.duration - SECONDS) < 0.1, info
    assert abs(audio_duration(path) - SECONDS) < 0.1

    wave = load_audio(path, RATE)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # lossy codecs add up to a frame or two of priming/padding when the container cannot say
    assert abs(wave.size / RATE - SECONDS) < 0.06, wave.size / RATE
    correlation, lag = _similarity(source[1], wave, max_lag=int(0.06 * RATE))
    assert correlation > 0.95, (correlation, lag)

    streamed = np.concatenate(list(stream_audio(path, RATE, block_seconds=0.7)))
    assert streamed.shape == wave.shape
    assert np.array_equal(streamed, wave)  # one soxr stream: exact


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("aac-m4a", "really_m4a.mp3"),
        ("aac-adts", "really_aac.mp3"),
        ("alac-m4a", "really_alac.flac"),
        ("opus-webm", "really_webm.ogg"),
        ("wav", "really_wav.m4a"),
    ],
)
def test_wrong_extension_is_decoded_by_content(
    tmp_path: Path, source: tuple[Path, np.ndarray], fmt: str, name: str
) -> None:
    if fmt == "wav":
        path = tmp_path / name
        path.write_bytes(source[0].read_bytes())
    else:
        real_name, codec, kwargs = FORMATS[fmt]
        real = _encode(tmp_path / real_name, codec, _signal(SECONDS, SR), SR, **kwargs)
        path = real.rename(tmp_path / name)
    wave = load_audio(path, RATE)
    correlation, _ = _similarity(source[1], wave, max_lag=int(0.06 * RATE))
    assert correlation > 0.95


@pytest.mark.parametrize("fmt", ["alac-m4a", "mka-flac", "wavpack"])
def test_channels_are_averaged_for_planar_and_packed_decoders(tmp_path: Path, fmt: str) -> None:
    # lossless codecs, so the mean is exact to 16-bit rounding: ALAC decodes to planar s32p,
    # FLAC in Matroska to packed (interleaved) s16, WavPack to planar s16p
    name, codec, kwargs = FORMATS[fmt]
    x = _signal(1.0, SR)
    path = _encode(tmp_path / name, codec, np.stack([x, -0.5 * x]), SR, layout="stereo", **kwargs)
    assert audio_info(path).channels == 2
    wave = load_audio(path, SR)
    assert wave.size == x.size
    assert np.abs(wave - 0.25 * x).max() < 1e-4


def _one_line_error(path: Path, match: str) -> None:
    for call in (
        lambda: load_audio(path, RATE),
        lambda: audio_info(path),
        lambda: stream_audio(path, RATE),  # header errors come at the call, not at the first block
    ):
        with pytest.raises(AudioError, match=match) as err:
            call()
        message = str(err.value)
        assert message.startswith(str(path)) and "\n" not in message, message


def test_container_without_audio_stream_is_one_line(tmp_path: Path) -> None:
    path = _encode(tmp_path / "silent_film.mp4", None, _signal(SECONDS, SR), SR, video=True)
    _one_line_error(path, r"no audio stream$")


def test_text_named_m4a_is_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "lyrics.m4a"
    path.write_text("la la la, not audio\n" * 100)
    _one_line_error(path, r"not a readable audio file")


def test_drm_protected_track_is_named_as_such(tmp_path: Path) -> None:
    clear = _encode(tmp_path / "clear.m4a", "aac", _signal(SECONDS, SR), SR)
    # An iTunes FairPlay track differs in the sample-entry fourcc ("drms" instead of "mp4a"), so
    # swapping the four bytes makes a stand-in (its audio is not actually encrypted).
    data = clear.read_bytes()
    assert data.count(b"mp4a") == 1
    path = tmp_path / "protected.m4p"
    path.write_bytes(data.replace(b"mp4a", b"drms"))
    _one_line_error(path, r"DRM-protected \(drms\), cannot decode$")


def test_sidecars_and_hidden_files_are_classified_by_name() -> None:
    assert classify_path("/music/a/01 Song.M4A") == "audio"
    assert classify_path("x.wma") == classify_path("x.webm") == classify_path("x.ac3") == "audio"
    assert classify_path("/music/a/cover.JPG") == "sidecar"
    for suffix in SIDECAR_EXTENSIONS:
        assert classify_path(f"album{suffix}") == "sidecar"
    assert classify_path("/music/a/._01 Song.m4a") == "hidden"  # macOS resource fork
    assert classify_path(".DS_Store") == "hidden"
    assert classify_path("Thumbs.db") == classify_path("README") == "unknown"
    assert not set(AUDIO_EXTENSIONS) & set(SIDECAR_EXTENSIONS)


@pytest.mark.parametrize(("orig_sr", "new_sr"), [(44100, 16000), (8000, 22050), (48000, 16000)])
@pytest.mark.parametrize("block_seconds", [0.003, 0.05, 1.0, 100.0])
def test_streamed_blocks_equal_whole_decode(
    tmp_path: Path, orig_sr: int, new_sr: int, block_seconds: float
) -> None:
    path = tmp_path / "clip.flac"
    sf.write(path, _signal(2.3, orig_sr), orig_sr)
    whole = load_audio(path, new_sr)
    blocks = list(stream_audio(path, new_sr, block_seconds=block_seconds))
    size = int(round(block_seconds * new_sr))
    assert all(b.size == size for b in blocks[:-1]) and 0 < blocks[-1].size <= size
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    assert np.array_equal(streamed, whole)  # soxr's stream does not depend on the blocks


def _write_long_flac(path: Path, minutes: int, sr: int) -> Path:
    minute = _signal(60.0, sr) * np.linspace(0.5, 1.0, 60 * sr, dtype=np.float32)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(minute)
    return path


def test_thirty_minute_file_streams_like_the_whole_decode(tmp_path: Path) -> None:
    path = _write_long_flac(tmp_path / "long.flac", 30, 8000)
    assert audio_duration(path) == pytest.approx(1800.0)
    whole = load_audio(path, RATE)
    blocks = stream_audio(path, RATE, block_seconds=60.0)
    offset = 0
    for block in blocks:  # compared block by block: the stream never holds more than one
        assert block.size <= 60 * RATE
        assert np.array_equal(block, whole[offset : offset + block.size])
        offset += block.size
    assert offset == whole.size == 1800 * RATE


def test_long_pyav_file_streams_like_the_whole_decode(tmp_path: Path) -> None:
    path = _encode(tmp_path / "long.m4a", "alac", _signal(600.0, 8000), 8000)
    info = audio_info(path)
    assert info.backend == "pyav" and info.duration == pytest.approx(600.0)
    whole = load_audio(path, RATE)
    streamed = np.concatenate(list(stream_audio(path, RATE, block_seconds=45.0)))
    assert streamed.shape == whole.shape == (600 * RATE,)
    assert np.array_equal(streamed, whole)


@pytest.mark.parametrize("fmt", ["aac-m4a", "alac-m4a", "opus-webm"])
def test_offset_and_duration_through_pyav(tmp_path: Path, fmt: str) -> None:
    name, codec, kwargs = FORMATS[fmt]
    seconds = SEEK_MIN_SECONDS + 6
    path = _encode(tmp_path / name, codec, _signal(seconds, SR), SR, **kwargs)
    rate = kwargs.get("rate", SR)  # at the file's own rate nothing is resampled: exact slices
    whole = load_audio(path, rate)
    # a short offset decodes from the start (sample-exact); a long one seeks, exact to one
    # timestamp tick: a sample in MP4, 1 ms in Matroska/WebM (half a tick after rounding)
    for offset, tick in [(1.25, 0), (SEEK_MIN_SECONDS + 2.5, 0 if "m4a" in name else rate // 1000)]:
        part = load_audio(path, rate, offset=offset, duration=2.0)
        assert part.size == 2 * rate
        start = int(round(offset * rate))
        errors = {
            lag: float(np.abs(part - whole[start + lag : start + lag + part.size]).max())
            for lag in range(-tick, tick + 1)
        }
        assert min(errors.values()) < 1e-4, (offset, min(errors, key=errors.get))
        streamed = np.concatenate(list(stream_audio(path, rate, 0.3, offset=offset, duration=2.0)))
        assert np.array_equal(streamed, part)
    with pytest.raises(AudioError, match="no audio samples at offset"):
        load_audio(path, rate, offset=seconds + 5)


def _write_stereo(path: Path, seconds: float) -> Path:
    """A 44.1 kHz stereo clip (the channels differ) as wav, flac, mp3 (libsndfile) or m4a (AAC)."""
    left = _signal(seconds, SR)
    stereo = np.stack([left, 0.5 * left[::-1]])
    if path.suffix == ".m4a":
        return _encode(path, "aac", stereo, SR, layout="stereo")
    sf.write(path, stereo.T, SR)
    return path


@pytest.mark.parametrize("name", ["clip.wav", "clip.flac", "clip.mp3", "clip.m4a"])
def test_streamed_decode_is_the_whole_decode_with_offset_and_duration(
    tmp_path: Path, name: str
) -> None:
    """load_audio and stream_audio share one soxr stream: the same samples, bit for bit (max abs
    difference 0), whole or sliced, seeking (m4a past SEEK_MIN_SECONDS) or not, any block size."""
    path = _write_stereo(tmp_path / name, SEEK_MIN_SECONDS + 4)
    assert audio_info(path).channels == 2
    for offset, duration in [(0.0, None), (1.3, 2.7), (SEEK_MIN_SECONDS + 0.4, 3.0)]:
        whole = load_audio(path, RATE, offset=offset, duration=duration)
        assert whole.dtype == np.float32 and whole.ndim == 1 and whole.size > RATE
        for block_seconds in (0.01, 0.37, 60.0):
            blocks = list(stream_audio(path, RATE, block_seconds, offset, duration))
            size = int(round(block_seconds * RATE))
            assert all(b.size == size for b in blocks[:-1]), (offset, block_seconds)
            streamed = np.concatenate(blocks)
            assert streamed.shape == whole.shape, (offset, block_seconds)
            assert np.abs(streamed - whole).max() == 0.0, (offset, block_seconds)


@pytest.mark.slow
def test_a_real_mp3_streams_without_read_boundary_glitches() -> None:
    """libsndfile's mp3 reader can glitch at a read boundary (reading a 30 s mood4q clip in
    65536-frame blocks differs from one read by up to 0.35); stream_audio reads mp3 in pieces of
    MP3_READ_FRAMES, so a clip shorter than that streams exactly as load_audio decodes it."""
    from tests.conftest import SHARED_DATA

    clips = sorted((SHARED_DATA / "mood4q").glob("*/*.mp3"))[:5]
    if not clips:
        pytest.skip(f"no mood4q clips under {SHARED_DATA}")
    for clip in clips:
        whole = load_audio(clip, RATE)
        streamed = np.concatenate(list(stream_audio(clip, RATE, block_seconds=65536 / RATE)))
        assert np.array_equal(streamed, whole), clip
