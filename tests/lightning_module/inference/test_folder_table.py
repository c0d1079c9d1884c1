"""lightning_module.inference.folder_table: every file accounted for, resumable tables, long files
tagged in bounded memory (streamed windows equal to the whole-file result)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from datamodules.audio import load_audio
from datamodules.synthetic import render_clip
from lightning_module.inference import tagger as tagger_module
from lightning_module.inference.folder_table import (
    LibraryError,
    list_library,
    skip_reason,
    state_path,
    tag_library,
)
from lightning_module.inference.streaming import WindowStream
from lightning_module.inference.tagger import Tagger

TOL = 1e-5


@pytest.fixture(scope="module")
def tagger(trained_checkpoint: Path) -> Tagger:
    return Tagger.from_checkpoint(trained_checkpoint, batch_size=4)


def _music(seconds: float, sr: int, seed: int = 0, genre: str = "rock") -> np.ndarray:
    return render_clip(genre, "happy", seconds, sr, np.random.default_rng(seed))[0]


def _encode_aac(path: Path, x: np.ndarray, sr: int, container: str) -> Path:
    """AAC in an MP4 (``ipod``: .m4a) or a raw ADTS stream, written with PyAV."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("aac", rate=sr, layout="mono")
        for start in range(0, x.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[None, start : start + 1024], dtype=np.float32),
                format="fltp",
                layout="mono",
            )
            frame.sample_rate, frame.pts = sr, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            image = np.full((48, 64, 3), i * 9, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a real music folder holds: four taggable files (wav, flac, an m4a made with PyAV, an
    AAC stream misnamed .mp3), six that cannot be tagged for six different reasons, two of
    unknown format, five sidecars and three hidden entries."""
    root = tmp_path_factory.mktemp("library")
    (root / "sub").mkdir()
    sf.write(root / "a_rock.wav", _music(4.0, 16000, 1), 16000)
    sf.write(root / "b_jazz.flac", _music(3.0, 22050, 2, "jazz"), 22050)
    _encode_aac(root / "sub" / "c_folk.m4a", _music(3.0, 44100, 3, "folk"), 44100, "ipod")
    _encode_aac(root / "d_really_aac.mp3", _music(3.0, 44100, 4), 44100, "adts")
    # cannot be tagged
    (root / "e_corrupt.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    sf.write(root / "f_short.wav", _music(0.5, 16000, 5), 16000)
    sf.write(root / "g_silent.wav", np.zeros(3 * 16000, dtype=np.float32), 16000)
    _video_only(root / "sub" / "h_silent_film.mp4")
    clear = _encode_aac(root / "clear.tmp", _music(2.0, 44100, 6), 44100, "ipod").read_bytes()
    (root / "clear.tmp").unlink()
    (root / "sub" / "i_protected.m4p").write_bytes(clear.replace(b"mp4a", b"drms"))
    (root / "j_empty.ogg").write_bytes(b"")
    # unknown format: never opened, even when the content is audio
    sf.write(root / "k_wav_inside.bin", _music(2.0, 16000, 7), 16000, format="WAV")
    (root / "README").write_text("my music\n")
    # sidecars and hidden entries: not audio, not errors
    for name in ("cover.jpg", "album.cue", "rip.nfo", "sub/lyrics.lrc", "playlist.m3u"):
        (root / name).write_bytes(b"not audio")
    (root / ".DS_Store").write_bytes(b"\0" * 64)
    (root / "sub" / "._c_folk.m4a").write_bytes(b"\0\5\26\7" * 64)  # a macOS resource fork
    (root / ".trash").mkdir()
    sf.write(root / ".trash" / "deleted.wav", _music(2.0, 16000, 8), 16000)
    return root


def test_listing_is_by_name(library: Path, tmp_path: Path) -> None:
    listing = list_library(library)
    assert [p.name for p in listing.audio] == [
        "a_rock.wav",
        "b_jazz.flac",
        "d_really_aac.mp3",
        "e_corrupt.flac",
        "f_short.wav",
        "g_silent.wav",
        "j_empty.ogg",
        "c_folk.m4a",
        "h_silent_film.mp4",
        "i_protected.m4p",
    ]
    assert [p.name for p in listing.unknown] == ["README", "k_wav_inside.bin"]
    assert dict(listing.not_audio) == {"sidecar": 5, "hidden": 3}  # 2 files, 1 folder
    # a symlink loop is cut, a table written into the folder is not a candidate
    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "x.wav", _music(2.0, 16000), 16000)
    (tmp_path / "music" / "loop").symlink_to(tmp_path / "music")
    (tmp_path / "music" / "tags.csv").write_text("path\n")
    listing = list_library(tmp_path / "music", exclude=[tmp_path / "music" / "tags.csv"])
    assert [p.name for p in listing.audio] == ["x.wav"]
    assert dict(listing.not_audio) == {"linked twice": 1, "output": 1}


def test_every_file_not_tagged_is_listed_and_counted_by_reason(
    tagger: Tagger, library: Path
) -> None:
    out, errors = io.StringIO(), io.StringIO()
    report = tag_library(tagger, library, out, progress=False, errors=errors)
    rows = out.getvalue().splitlines()[1:]
    assert report.tagged == len(rows) == 4
    assert sorted(Path(r.split(",")[0]).name for r in rows) == [
        "a_rock.wav",
        "b_jazz.flac",
        "c_folk.m4a",
        "d_really_aac.mp3",
    ]
    assert report.skip_counts() == {
        "DRM-protected": 1,
        "corrupt or unreadable": 1,
        "empty": 1,
        "no audio stream": 1,
        "silent": 1,
        "too short": 1,
        "unknown format": 2,
    }
    lines = errors.getvalue().splitlines()
    assert len(lines) == len(report.skipped) == 8
    assert all(line.startswith("skipped: ") for line in lines)
    for path, reason in report.skipped:  # one line each, naming the file
        assert any(line == f"skipped: {path}: {reason}" for line in lines)
    assert report.not_audio == {"sidecar": 5, "hidden": 3}
    assert report.summary("tags.csv") == (
        "tagged 4 file(s), skipped 8 (DRM-protected 1, corrupt or unreadable 1, empty 1, "
        "no audio stream 1, silent 1, too short 1, unknown format 2), "
        "not audio 8 (hidden 3, sidecar 5); wrote tags.csv"
    )
    # the reason is read from the decoder's text after the file name, never from the name
    assert (
        skip_reason("not a readable audio file (format not recognised)") == "corrupt or unreadable"
    )


def _folder(root: Path, n: int = 3) -> Path:
    root.mkdir()
    for i in range(n):
        sf.write(root / f"song{i}.wav", _music(2.5 + i, 16000, 20 + i), 16000)
    return root


def _rows(path: Path) -> list[str]:
    """The data rows, each with its line ending, in file order."""
    lines = path.read_bytes().decode().splitlines(keepends=True)
    return lines[1:] if path.suffix == ".csv" else lines


def test_resume_keeps_unchanged_files_and_retags_changed_ones(
    tagger: Tagger, trained_checkpoint: Path, tmp_path: Path
) -> None:
    music = _folder(tmp_path / "music")
    out = tmp_path / "tags.csv"
    args = {"out": out, "model": trained_checkpoint, "progress": False}
    first = tag_library(tagger, music, **args)
    assert first.tagged == 3 and state_path(out).is_file()
    written = out.read_bytes()
    assert out.read_text().splitlines()[0].endswith("file_bytes,file_mtime_ns")

    again = tag_library(tagger, music, **args)  # nothing changed: nothing tagged
    assert (again.tagged, again.kept, again.dropped) == (0, 3, 0)
    assert out.read_bytes() == written

    st = (music / "song1.wav").stat()
    os.utime(music / "song1.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    (music / "song2.wav").unlink()
    sf.write(music / "song3.wav", _music(3.0, 16000, 30), 16000)
    third = tag_library(tagger, music, **args)
    assert (third.tagged, third.kept, third.dropped) == (2, 1, 2)  # song1 and song2's rows go
    rows = _rows(out)
    assert sorted(Path(r.split(",")[0]).name for r in rows) == [
        "song0.wav",
        "song1.wav",
        "song3.wav",
    ]
    assert rows[0] == _rows_of(written)[0]  # song0's row kept as it was, byte for byte
    assert "kept 1 from an earlier run (dropped 2 stale or torn row(s))" in third.summary()


def _rows_of(data: bytes) -> list[str]:
    return data.decode().splitlines(keepends=True)[1:]


def test_another_model_folder_or_setting_is_refused_unless_forced(
    tagger: Tagger, trained_checkpoint: Path, tmp_path: Path
) -> None:
    music = _folder(tmp_path / "music", 2)
    out = tmp_path / "tags.jsonl"
    tag_library(tagger, music, fmt="jsonl", out=out, model=trained_checkpoint, progress=False)
    other = tmp_path / "other.ckpt"
    other.write_bytes(trained_checkpoint.read_bytes() + b"\0")  # another file, another sha256
    cases = [
        ({"model": other}, "written with another model (sha256 "),
        ({"offset": 0.5}, "written with other settings (offset 0.0 -> 0.5)"),
        ({"fmt": "jsonl", "top": 2}, "written with other settings (top None -> 2)"),
    ]
    for changes, message in cases:
        kwargs = {"fmt": "jsonl", "out": out, "model": trained_checkpoint, **changes}
        with pytest.raises(LibraryError) as err:
            tag_library(tagger, music, progress=False, **kwargs)
        assert str(err.value).startswith(f"{out}: {message}") and "--force" in str(err.value)
    (tmp_path / "elsewhere").mkdir()
    sf.write(tmp_path / "elsewhere" / "x.wav", _music(2.0, 16000), 16000)
    with pytest.raises(LibraryError, match="written for folder"):
        tag_library(tagger, tmp_path / "elsewhere", fmt="jsonl", out=out, model=trained_checkpoint)
    forced = tag_library(
        tagger, music, fmt="jsonl", out=out, model=other, force=True, progress=False
    )
    assert (forced.tagged, forced.kept) == (2, 0) and len(_rows(out)) == 2
    # a file no library run wrote is never overwritten without --force
    foreign = tmp_path / "mine.csv"
    foreign.write_text("my own spreadsheet\n")
    with pytest.raises(LibraryError, match="no mine.csv.state.json says a library run wrote it"):
        tag_library(tagger, music, out=foreign, model=trained_checkpoint, progress=False)
    assert foreign.read_text() == "my own spreadsheet\n"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_torn_last_row_is_dropped_and_the_table_completed(
    tagger: Tagger, trained_checkpoint: Path, tmp_path: Path, fmt: str
) -> None:
    music = _folder(tmp_path / "music", 4)
    whole, torn = tmp_path / f"whole.{fmt}", tmp_path / f"torn.{fmt}"
    for out in (whole, torn):
        tag_library(tagger, music, fmt=fmt, out=out, model=trained_checkpoint, progress=False)
    data = torn.read_bytes()
    rows = _rows(torn)
    cut = len(data) - len(rows[-1].encode()) - len(rows[-2].encode()) // 2
    torn.write_bytes(data[:cut])  # half of the third row survived a kill, the fourth is lost
    resumed = tag_library(tagger, music, fmt=fmt, out=torn, model=trained_checkpoint)
    assert (resumed.tagged, resumed.kept, resumed.dropped) == (2, 2, 1)
    assert sorted(_rows(torn)) == sorted(_rows(whole))
    assert torn.read_bytes().splitlines()[0] == whole.read_bytes().splitlines()[0]


# -- long files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 minutes, 8 kHz mono flac (~20 MB): each minute a different gain and noise."""
    sr = 8000
    minute = _music(60.0, sr, 40)
    rng = np.random.default_rng(41)
    path = tmp_path_factory.mktemp("long") / "long.flac"
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(30):
            noise = 0.01 * rng.standard_normal(minute.size)
            f.write((minute * rng.uniform(0.3, 1.0) + noise).astype(np.float32))
    return path


def _close(a, b) -> None:
    assert a.path == b.path and a.windows == b.windows
    assert a.duration == pytest.approx(b.duration) and a.start == pytest.approx(b.start)
    for task in ("genre", "mood", "tags"):
        np.testing.assert_allclose(
            [p for _, p in sorted(getattr(a, task))],
            [p for _, p in sorted(getattr(b, task))],
            atol=TOL,
        )
    assert a.features.keys() == b.features.keys()
    np.testing.assert_allclose(list(a.features.values()), list(b.features.values()), rtol=1e-4)


def test_thirty_minute_file_is_tagged_in_streamed_windows_like_the_whole_file(
    tagger: Tagger, long_flac: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wave = load_audio(long_flac, tagger.sample_rate)
    whole = tagger.predict_waveform(wave, str(long_flac))
    del wave
    sliced = load_audio(long_flac, tagger.sample_rate, offset=1500.0, duration=60.0)
    timeline_whole = tagger.window_outputs(sliced)

    def no_whole_decode(*args, **kwargs):
        raise AssertionError("decoded the whole file")

    monkeypatch.setattr(tagger_module, "load_audio", no_whole_decode)
    streamed = tagger.predict_file(long_flac)
    assert streamed.windows == 64 and streamed.duration == pytest.approx(1800.0)
    _close(streamed, whole)
    timeline = tagger.timeline(long_flac, offset=1500.0, duration=60.0)
    starts, outputs = timeline_whole
    assert [w.start for w in timeline] == pytest.approx([1500.0 + s / 16000 for s in starts])
    for i, window in enumerate(timeline):
        probabilities = dict(
            zip(tagger.spec.genre_names, outputs["genre"][i].tolist(), strict=True)
        )
        assert window.genre[0][1] == pytest.approx(probabilities[window.genre[0][0]], abs=TOL)


@pytest.mark.parametrize("factor", [0.0, 0.3, 3.0])
def test_a_wrong_length_in_the_header_still_gives_the_whole_file_result(
    tagger: Tagger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factor: float
) -> None:
    """mp3 and some containers only estimate their length; the windows are chosen from the
    estimate and the ones it got wrong are decoded in a second pass."""
    path = tmp_path / "song.flac"
    sf.write(path, _music(150.0, 8000, 50), 8000)  # 149 windows of 2 s every 1 s > 64
    expected = tagger.predict_waveform(load_audio(path, 16000), str(path))
    estimate = WindowStream._estimate
    monkeypatch.setattr(
        WindowStream, "_estimate", lambda self, info: int(estimate(self, info) * factor)
    )
    _close(tagger.predict_file(path), expected)
    (result,) = tagger.predict_files([path])
    _close(result, expected)


def test_silence_is_judged_on_the_whole_stream(tagger: Tagger, tmp_path: Path) -> None:
    sr = 8000
    quiet_start = np.concatenate([np.zeros(70 * sr), _music(5.0, sr, 60)]).astype(np.float32)
    sf.write(tmp_path / "late.flac", quiet_start, sr)  # the first 60 s block is all zeros
    assert tagger.predict_file(tmp_path / "late.flac").duration == pytest.approx(75.0)
    sf.write(tmp_path / "silent.flac", np.zeros(70 * sr, dtype=np.float32), sr)
    (result,) = tagger.predict_files([tmp_path / "silent.flac"])
    assert str(result) == f"{tmp_path / 'silent.flac'}: audio is silent"
    with pytest.raises(Exception, match="audio is silent"):
        tagger.timeline(tmp_path / "silent.flac")


def test_a_file_shorter_than_a_window_is_run_whole(tagger: Tagger, tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, _music(1.5, 16000, 70), 16000)
    wave = load_audio(path, 16000)
    expected = tagger.predict_waveform(wave, str(path))
    _close(tagger.predict_file(path), expected)
    (window,) = tagger.timeline(path)
    assert window.duration == pytest.approx(1.5) and isinstance(wave, np.ndarray)
