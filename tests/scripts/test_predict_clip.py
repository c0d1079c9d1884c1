from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.schema import FEATURES
from datamodules.synthetic import render_clip
from scripts.predict_clip import main
from tests.conftest import REPO_ROOT, SHARED_DATA, write_tone


@pytest.fixture(scope="module")
def song_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s synthetic rock clip at 44.1 kHz stereo, as mp3: longer than one window, other rate."""
    samples, _ = render_clip("rock", "happy", 12.0, 44100, np.random.default_rng(5))
    path = tmp_path_factory.mktemp("audio") / "song.mp3"
    sf.write(path, np.stack([samples, samples], axis=1), 44100, format="MP3")
    return path


def test_json_output_has_all_three_heads(trained_checkpoint: Path, song_mp3: Path, capsys) -> None:
    assert (
        main([str(song_mp3), "--checkpoint", str(trained_checkpoint), "--json", "--top", "6"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["windows"] >= 5 and 11.5 < out["duration"] < 12.5  # overlapping 2 s windows
    assert len(out["genre"]) == 6 and abs(sum(g["probability"] for g in out["genre"]) - 1) < 0.01
    assert {m["label"] for m in out["mood"]} == {"happy", "sad", "energetic", "calm"}
    assert set(out["features"]) == set(FEATURES)
    assert 30 < out["features"]["tempo"] < 250 and -60 < out["features"]["loudness"] < 0


def test_the_default_model_is_the_shipped_one_never_a_checkpoint_lying_around(
    trained_checkpoint: Path, song_mp3: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """No model named: the shipped model runs, and a (demo) checkpoint in ./checkpoints is not
    picked up silently; without a shipped model that is one line, not a fallback."""
    import lightning_module.inference.shipped as shipped
    from scripts.export_onnx import main as export_main

    (tmp_path / "checkpoints").mkdir()
    shutil.copy(trained_checkpoint, tmp_path / "checkpoints" / "best-epoch=001.ckpt")
    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(shipped, "shipped_dir", lambda: package)
    monkeypatch.chdir(tmp_path)
    assert main([str(song_mp3)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "shipped model is not installed" in err
    assert "\n" not in err
    assert (
        export_main(["--checkpoint", str(trained_checkpoint), "--out", str(package / "model.onnx")])
        == 0
    )
    capsys.readouterr()
    assert main([str(song_mp3)]) == 0
    text = capsys.readouterr().out
    for word in ("genre:", "mood:", "tempo", "BPM", "loudness", "dB", "danceability"):
        assert word in text


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "too_short"])
def test_bad_audio_exits_2_with_one_line(
    case: str, trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "clip.mp3"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "too_short":
        path = write_tone(tmp_path / "short.wav", seconds=0.4)
    assert main([str(path), "--checkpoint", str(trained_checkpoint)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and str(path) in err and "\n" not in err


@pytest.mark.parametrize(("device", "says"), [("gpu9", "device: "), ("cuda", "device cuda: ")])
def test_a_device_that_is_not_here_exits_2_with_one_line(
    device: str, says: str, trained_checkpoint: Path, song_mp3: Path, capsys
) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is here")
    assert main([str(song_mp3), "--checkpoint", str(trained_checkpoint), "--device", device]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"error: {says}") and "\n" not in err and captured.out == ""


def test_script_runs_as_a_command(trained_checkpoint: Path, song_mp3: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "scripts/predict_clip.py",
            str(song_mp3),
            "--checkpoint",
            str(trained_checkpoint),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["genre"][0]["label"]


def _predict_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/predict_clip.py", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )


def test_a_closed_pipe_ends_quietly(trained_checkpoint: Path, song_mp3: Path) -> None:
    """`predict_clip ... | head -1`: no BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "scripts/predict_clip.py", str(song_mp3)]
        + ["--checkpoint", str(trained_checkpoint), "--json"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.readline()
    process.stdout.close()  # the reader goes away after one line, as `head -1` does
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_libmpg123_noise_stays_off_stderr(trained_checkpoint: Path) -> None:
    """A real mp3 tagged from an offset made libmpg123 print '[src/libmpg123/...] error: ...'."""
    clips = sorted((SHARED_DATA / "mood4q").glob("Q*/*.mp3"))[:3]
    if not clips:
        pytest.skip("../shared/data/mood4q is absent")
    for clip in clips:
        result = _predict_command(
            str(clip), "--checkpoint", str(trained_checkpoint), "--offset", "7"
        )
        assert result.returncode == 0, result.stderr
        assert b"libmpg123" not in result.stderr and b"error" not in result.stderr, result.stderr


def test_a_file_that_is_no_checkpoint_is_named_as_such(song_mp3: Path, capsys) -> None:
    assert main([str(song_mp3), "--checkpoint", str(song_mp3)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {song_mp3}: not a checkpoint (a .ckpt file written by training)"
    assert "weights_only" not in err


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--batch-size", "-3"], ["--top", "0"]])
def test_counts_below_one_are_refused(song_mp3: Path, option: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(song_mp3), *option])
    assert exit_.value.code == 2
    assert option[0] in capsys.readouterr().err
