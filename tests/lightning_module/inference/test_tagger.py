"""lightning_module.inference.tagger: folders, slices, timelines, output formats, Spotify refs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from datamodules.audio import AudioError, load_audio, window_starts
from datamodules.schema import FEATURE_RANGES
from datamodules.sources.spotify_preview import (
    SpotifyError,
    fetch_spotify_preview,
    spotify_track_id,
)
from datamodules.synthetic import render_clip
from lightning_module.inference.folder_table import tag_library
from lightning_module.inference.output import (
    PredictionWriter,
    format_timeline,
    prediction_columns,
)
from lightning_module.inference.tagger import Tagger
from lightning_module.plots import plot_timeline
from tests.conftest import REPO_ROOT, write_tone

TOL = 1e-5  # same model, same windows: only batch composition differs


@pytest.fixture(scope="module")
def tagger(trained_checkpoint: Path) -> Tagger:
    return Tagger.from_checkpoint(trained_checkpoint, batch_size=4)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five clips of 1.5-7 s (1 to 6 windows of 2 s), two rates, mono and stereo, a subfolder,
    plus an empty and a corrupt file."""
    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(3)
    specs = [
        ("a_rock.wav", "rock", "happy", 7.0, 16000),
        ("b_jazz.flac", "jazz", "calm", 3.0, 22050),
        ("c_short.wav", "folk", "sad", 1.5, 16000),
        ("sub/d_hiphop.ogg", "hiphop", "energetic", 5.0, 44100),
        ("sub/e_classical.wav", "classical", "calm", 4.0, 16000),
    ]
    for name, genre, mood, seconds, sr in specs:
        samples, _ = render_clip(genre, mood, seconds, sr, rng)
        (root / name).parent.mkdir(exist_ok=True)
        data = np.stack([samples, samples], 1) if name.endswith("ogg") else samples
        sf.write(root / name, data, sr)
    (root / "c_empty.mp3").write_bytes(b"")
    (root / "sub" / "f_corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    (root / "notes.txt").write_text("not audio")
    return root


def _close(a, b) -> None:
    assert a.path == b.path and a.windows == b.windows
    assert a.duration == pytest.approx(b.duration) and a.start == pytest.approx(b.start)
    for task in ("genre", "mood"):
        assert [n for n, _ in getattr(a, task)] == [n for n, _ in getattr(b, task)]
        np.testing.assert_allclose(
            [p for _, p in getattr(a, task)], [p for _, p in getattr(b, task)], atol=TOL
        )
    np.testing.assert_allclose(list(a.features.values()), list(b.features.values()), rtol=TOL)


def test_predict_files_shares_batches_and_matches_one_by_one(tagger: Tagger, library: Path):
    files = sorted(library.rglob("*.*"))
    files = [f for f in files if f.suffix != ".txt"]
    results = list(tagger.predict_files(files, decode_workers=2))
    assert len(results) == len(files)  # one result per file, in order
    for path, result in zip(files, results, strict=True):
        if path.name in ("c_empty.mp3", "f_corrupt.wav"):
            assert isinstance(result, AudioError) and str(path) in str(result)
        else:
            _close(result, tagger.predict_file(path))
            for name, value in result.features.items():  # clipped to the valid range
                low, high = FEATURE_RANGES[name]
                assert low <= value <= high, (name, value)
    windows = {Path(r.path).name: r.windows for r in results if not isinstance(r, AudioError)}
    assert windows == {
        "a_rock.wav": 6,
        "b_jazz.flac": 2,
        "c_short.wav": 1,
        "d_hiphop.ogg": 4,
        "e_classical.wav": 3,
    }


def test_offset_and_duration_tag_exactly_that_slice(tagger: Tagger, library: Path) -> None:
    path = library / "a_rock.wav"
    sliced = tagger.predict_file(path, offset=2.0, duration=3.0)
    assert sliced.start == 2.0 and sliced.duration == pytest.approx(3.0) and sliced.windows == 2
    wave = load_audio(path, tagger.sample_rate)
    by_hand = tagger.predict_waveform(wave[2 * 16000 : 5 * 16000], str(path), start=2.0)
    _close(sliced, by_hand)
    whole = tagger.predict_file(path)
    assert whole.features != sliced.features  # a different slice gives a different answer
    with pytest.raises(AudioError, match="a_rock.wav"):
        tagger.predict_file(path, offset=60.0)


def test_timeline_one_prediction_per_window(tagger: Tagger, library: Path, tmp_path: Path):
    path = library / "a_rock.wav"
    timeline = tagger.timeline(path, offset=1.0)
    wave = load_audio(path, tagger.sample_rate, offset=1.0)
    starts = window_starts(wave.size, tagger.window, tagger.hop)
    assert [w.start for w in timeline] == pytest.approx([1.0 + s / 16000 for s in starts])
    for w, s in zip(timeline, starts, strict=True):
        _close(w, tagger.predict_waveform(wave[s : s + tagger.window], str(path), 1.0 + s / 16000))
    table = format_timeline(timeline).splitlines()
    assert table[0].split() == ["start", "end", "genre", "mood", "energy", "valence"]
    assert len(table) == len(timeline) + 1
    first = table[1].split()
    assert first[:2] == ["0:01.0", "0:03.0"] and first[2] == timeline[0].genre[0][0]
    assert float(first[-2]) == pytest.approx(timeline[0].features["energy"], abs=1e-3)
    png = plot_timeline(timeline, tmp_path / "t.png")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000


def test_csv_and_jsonl_writers(tagger: Tagger, library: Path) -> None:
    prediction = tagger.predict_file(library / "b_jazz.flac")
    stream = io.StringIO()
    writer = PredictionWriter(stream, "csv", tagger.spec)
    writer.write(prediction)
    (row,) = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert list(row) == prediction_columns(tagger.spec)
    assert row["genre"] == prediction.genre[0][0]
    assert sum(float(row[f"genre:{g}"]) for g in tagger.spec.genre_names) == pytest.approx(
        1.0, abs=1e-3
    )
    assert float(row["tempo"]) == pytest.approx(prediction.features["tempo"], abs=1e-3)
    stream = io.StringIO()
    PredictionWriter(stream, "jsonl", tagger.spec, top=2).write(prediction)
    record = json.loads(stream.getvalue())
    assert record["path"] == str(library / "b_jazz.flac") and len(record["genre"]) == 2


def test_tag_library_skips_and_reports_bad_files(tagger: Tagger, library: Path) -> None:
    out, errors = io.StringIO(), io.StringIO()
    report = tag_library(tagger, library, out, "csv", progress=False, errors=errors)
    assert report.tagged == 5 and len(report.skipped) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert sorted(Path(r["path"]).name for r in rows) == [
        "a_rock.wav",
        "b_jazz.flac",
        "c_short.wav",
        "d_hiphop.ogg",
        "e_classical.wav",
    ]
    lines = errors.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("skipped: ") for line in lines)
    assert any("c_empty.mp3" in line and "empty" in line for line in lines)
    with pytest.raises(AudioError, match="no audio files"):
        tag_library(tagger, library / "sub" / "nothing", io.StringIO(), progress=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4uLU6hMCjMI75M1A2tKUQC", "4uLU6hMCjMI75M1A2tKUQC"),
        ("spotify:track:4uLU6hMCjMI75M1A2tKUQC", "4uLU6hMCjMI75M1A2tKUQC"),
        ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=abc", "4uLU6hMCjMI75M1A2tKUQC"),
        ("https://open.spotify.com/intl-de/track/4uLU6hMCjMI75M1A2tKUQC", "4uLU6hMCjMI75M1A2tKUQC"),
        ("https://open.spotify.com/album/4uLU6hMCjMI75M1A2tKUQC", None),
        ("song.mp3", None),
        ("4uLU6hMCjMI75M1A2tKUQ", None),  # 21 characters
    ],
)
def test_spotify_track_references(text: str, expected: str | None) -> None:
    assert spotify_track_id(text) == expected


SPOTIFY_ID = "4uLU6hMCjMI75M1A2tKUQC"
NO_PREVIEW_ID = "7ouMYWpwJ422jRcDASZB7P"


@pytest.fixture
def spotify_server(tmp_path: Path, monkeypatch):
    """The Spotify stand-in on 127.0.0.1 (token endpoint, tracks, preview hosting), with the
    real spotipy client pointed at it through the Spotify source's ``api``/``auth_url``."""
    from tests.datamodules.sources.http_server import LocalServer
    from tests.datamodules.sources.spotify_server import (
        CLIENT_ID,
        CLIENT_SECRET,
        FakeSpotify,
        FakeTrack,
    )

    rng = np.random.default_rng(4)
    preview = tmp_path / "preview.mp3"
    sf.write(preview, render_clip("rock", "energetic", 6.0, 44100, rng)[0], 44100, format="MP3")
    tracks = [
        FakeTrack(SPOTIFY_ID, "Song", "art1", "Band", "USXX10000001"),
        FakeTrack(NO_PREVIEW_ID, "Quiet", "art1", "Band", "USXX10000002", preview=False),
    ]
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", CLIENT_SECRET)
    with LocalServer() as server:
        FakeSpotify(server, tracks, {}, {}, preview.read_bytes())
        yield (
            server,
            {
                "api": server.url("/v1/"),
                "auth_url": server.url("/api/token"),
                "env_file": str(tmp_path / "none.env"),
                "retries": 1,
                "timeout": 5,
                "download": {"retries": 1, "backoff": 0.01, "timeout": 5},
            },
        )


def test_spotify_preview_is_downloaded_with_the_real_client_and_tagged(
    spotify_server, tagger: Tagger, tmp_path: Path
) -> None:
    server, options = spotify_server
    url = f"https://open.spotify.com/track/{SPOTIFY_ID}?si=x"
    path = fetch_spotify_preview(url, tmp_path / "previews", options)
    assert path == tmp_path / "previews" / f"spotify_{SPOTIFY_ID}.mp3"
    assert server.hits["/api/token"] == 1 and server.hits[f"/previews/{SPOTIFY_ID}.mp3"] == 1
    prediction = tagger.predict_file(path)
    assert prediction.duration == pytest.approx(6.0, abs=0.1) and prediction.windows in (5, 6)


@pytest.mark.parametrize(
    ("track", "secret", "expected"),
    [
        (NO_PREVIEW_ID, None, "(Band - Quiet): Spotify gives no preview for it"),
        ("0000000000000000000000", None, ": no such track on Spotify"),
        (SPOTIFY_ID, "wrong-secret", ": Spotify refused the client credentials"),
        (SPOTIFY_ID, "", ": set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET"),
    ],
)
def test_spotify_problems_are_one_clear_line(
    spotify_server, tmp_path: Path, monkeypatch, track: str, secret: str | None, expected: str
) -> None:
    _, options = spotify_server
    if secret is not None:
        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", secret)
    with pytest.raises(SpotifyError) as err:
        fetch_spotify_preview(f"spotify:track:{track}", tmp_path, options)
    message = str(err.value)
    assert message.startswith(f"spotify:track:{track}") and expected in message
    assert "\n" not in message and "wrong-secret" not in message
    assert not list(tmp_path.glob("spotify_*"))
    with pytest.raises(SpotifyError, match="not a Spotify track"):
        fetch_spotify_preview("song.mp3", tmp_path)


def test_inference_imports_no_lightning_tensorboard_or_pandas() -> None:
    code = (
        "import sys, lightning_module.inference.tagger, lightning_module.inference.runners\n"
        "bad = [m for m in ('pytorch_lightning', 'lightning', 'tensorboard', 'pandas',"
        " 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_short_and_silent_input(tagger: Tagger, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="too short"):
        tagger.predict_file(write_tone(tmp_path / "short.wav", seconds=0.5))
    wave = torch.zeros(16000 * 3)
    assert tagger.predict_waveform(wave + 0.01 * torch.randn(wave.shape)).windows == 2


def test_no_duplicate_end_window_and_the_tail_weighs_what_it_adds(
    tagger: Tagger, tmp_path: Path
) -> None:
    """A clip a few ms longer than the window grid (every 30.013 s GTZAN clip): no second window
    at the end (timeline rows, window count), and the clip average is the plain window mean."""
    rng = np.random.default_rng(5)
    grid = tagger.window + 2 * tagger.hop  # 3 windows on the grid
    samples, _ = render_clip("rock", "happy", (grid + 208) / 16000, 16000, rng)
    path = tmp_path / "gtzan_like.wav"
    sf.write(path, samples[: grid + 208], 16000)
    timeline = tagger.timeline(path)
    starts = [w.start for w in timeline]
    assert len(starts) == len(set(starts)) == 3
    clip = tagger.predict_file(path)
    assert clip.windows == 3
    wave = load_audio(path, 16000)
    _, outputs = tagger.window_outputs(wave)
    energy = outputs["features"][:, tagger.spec.feature_names.index("energy")]
    assert clip.features["energy"] == pytest.approx(float(energy.mean()), abs=TOL)


def test_an_end_window_weighs_the_share_of_new_audio(tagger: Tagger, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    n = tagger.window + tagger.hop + tagger.hop // 2  # the end window adds half a hop
    samples, _ = render_clip("jazz", "calm", n / 16000 + 0.1, 16000, rng)
    path = tmp_path / "tail.wav"
    sf.write(path, samples[:n], 16000)
    wave = load_audio(path, 16000)
    starts, outputs = tagger.window_outputs(wave)
    assert len(starts) == 3 and starts[-1] == n - tagger.window
    weights = np.array([1.0, 1.0, 0.5])
    expected = (outputs["mood"] * weights[:, None]).sum(0) / weights.sum()
    got = dict(tagger.predict_file(path).mood)
    for name, p in zip(tagger.spec.mood_names, expected.tolist(), strict=True):
        assert got[name] == pytest.approx(p, abs=TOL)
