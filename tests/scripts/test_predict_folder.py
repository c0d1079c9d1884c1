"""predict_clip.py beyond one file: folders, timelines, slices and Spotify references."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.synthetic import render_clip
from scripts.predict_clip import main
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(11)
    for name, genre, mood in (("one.wav", "rock", "happy"), ("two.flac", "jazz", "calm")):
        sf.write(root / name, render_clip(genre, mood, 4.0, 22050, rng)[0], 22050)
    (root / "album").mkdir()
    sf.write(root / "album" / "three.ogg", render_clip("folk", "sad", 3.0, 16000, rng)[0], 16000)
    (root / "broken.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    return root


def test_folder_to_csv_skips_and_reports_unreadable(
    folder: Path, trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "tags.csv"
    assert main([str(folder), "--checkpoint", str(trained_checkpoint), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["three.ogg", "one.wav", "two.flac"]
    assert all(r["genre"] and 30 < float(r["tempo"]) < 250 for r in rows)
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if "skipped: " in line]
    assert len(skipped) == 1 and "broken.mp3" in skipped[0]
    # the summary counts skipped files by reason (docs/library.md)
    assert f"tagged 3 file(s), skipped 1 (corrupt or unreadable 1); wrote {out}" in err


def test_folder_to_json_lines_on_stdout(folder: Path, trained_checkpoint: Path, capsys) -> None:
    args = [str(folder), "--checkpoint", str(trained_checkpoint), "--format", "jsonl"]
    assert main([*args, "--top", "2", "--offset", "1", "--duration", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 3
    assert all(r["start"] == 1.0 and r["duration"] == pytest.approx(2.0) for r in records)
    assert all(len(r["genre"]) == 2 and len(r["features"]) == 9 for r in records)


def test_folder_without_readable_audio_exits_2(trained_checkpoint: Path, tmp_path: Path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"")
    assert main([str(tmp_path), "--checkpoint", str(trained_checkpoint)]) == 2
    assert "tagged 0 file(s), skipped 1" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--checkpoint", str(trained_checkpoint)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {empty}: no audio files")


def test_timeline_table_json_and_plot(
    folder: Path, trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    song = folder / "one.wav"
    png = tmp_path / "timeline.png"
    args = [str(song), "--checkpoint", str(trained_checkpoint), "--timeline"]
    assert main([*args, "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["start", "end", "genre", "mood"]
    assert [line.split()[0] for line in lines[1:]] == ["0:00.0", "0:01.0", "0:02.0"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main([*args, "--json", "--offset", "0.5", "--duration", "3"]) == 0
    windows = json.loads(capsys.readouterr().out)
    assert [w["start"] for w in windows] == [0.5, 1.5]
    # Windows that do not overlap: one every window length (2 s) instead of every 1 s.
    assert main([*args, "--json", "--overlap", "0"]) == 0
    assert [w["start"] for w in json.loads(capsys.readouterr().out)][:2] == [0.0, 2.0]


@pytest.mark.parametrize(
    "args",
    [
        ["one.wav", "--plot", "x.png"],
        [".", "--timeline"],
        ["one.wav", "--out", "x.csv"],
        ["one.wav", "--overlap", "1"],
    ],
)
def test_contradictory_options_are_refused(folder: Path, args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(folder / args[0]), *args[1:]])
    assert exit_.value.code == 2 and "error: " in capsys.readouterr().err


def test_spotify_reference_without_credentials_is_one_line(
    trained_checkpoint: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    for name in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here: nothing may reach the network
    url = "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=x"
    assert main([url, "--checkpoint", str(trained_checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: spotify:track:4uLU6hMCjMI75M1A2tKUQC: set SPOTIPY_CLIENT_ID")
    assert "\n" not in err


def test_folder_command_shows_a_progress_bar(folder: Path, trained_checkpoint: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "scripts/predict_clip.py",
            str(folder),
            "--checkpoint",
            str(trained_checkpoint),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "file/s" in result.stderr or "3/4" in result.stderr  # tqdm on stderr
    assert result.stdout.splitlines()[0].startswith("path,start,duration,windows,genre")
