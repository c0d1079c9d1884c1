"""predict_clip.py FOLDER --out: a kill mid-run loses nothing written, a re-run completes the table
exactly, decode processes give the same rows, another model is refused without --force."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from datamodules.synthetic import render_clip
from lightning_module.inference.folder_table import state_path
from scripts.predict_clip import main
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 clips of 6-8 s (wav, flac, ogg; two rates), one of them corrupt, and a cover."""
    root = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(5)
    base = [render_clip(g, "calm", 8.0, 16000, rng)[0] for g in ("rock", "jazz", "folk")]
    for i in range(30):
        clip = np.roll(base[i % 3], 997 * i)[: (6 + i % 3) * 16000] * (0.5 + 0.015 * i)
        folder = root / f"cd{i // 10}"
        folder.mkdir(exist_ok=True)
        sf.write(folder / f"track{i:02d}.{('wav', 'flac', 'ogg')[i % 3]}", clip, 16000)
    (root / "cd1" / "track99.wav").write_bytes(b"RIFF" + bytes(300))
    (root / "cd1" / "cover.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _command(music: Path, checkpoint: Path, out: Path) -> list[str]:
    script = str(REPO_ROOT / "scripts" / "predict_clip.py")
    return [sys.executable, script, str(music), "--checkpoint", str(checkpoint), "--out", str(out)]


def _sorted_rows(path: Path) -> tuple[bytes, list[bytes]]:
    header, *rows = path.read_bytes().splitlines(keepends=True)
    return header, sorted(rows)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_byte_identical_apart_from_order(
    music: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    reference, killed = tmp_path / "reference.csv", tmp_path / "killed.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        _command(music, trained_checkpoint, reference), capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "tagged 30 file(s), skipped 1 (corrupt or unreadable 1), not audio 1 (sidecar 1)" in (
        done.stderr
    )
    process = subprocess.Popen(
        _command(music, trained_checkpoint, killed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if killed.exists() and killed.read_bytes().count(b"\n") >= 3:  # header + 2 rows
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before the kill"
    rows = killed.read_bytes().count(b"\n") - 1
    assert 2 <= rows < 30, rows
    # a kill inside a write leaves half a row: make sure this run has one to drop
    data = killed.read_bytes()
    last = data.splitlines(keepends=True)[-1]
    if last.endswith(b"\n"):
        killed.write_bytes(data + last[: len(last) // 2])
    resumed = subprocess.run(
        _command(music, trained_checkpoint, killed), capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = next(line for line in resumed.stderr.splitlines() if line.startswith("tagged "))
    assert f"tagged {30 - rows} file(s), kept {rows} from an earlier run" in summary, summary
    assert _sorted_rows(killed) == _sorted_rows(reference)
    assert state_path(killed).read_text() == state_path(reference).read_text()


def test_decode_processes_give_the_same_rows_as_threads(
    music: Path, trained_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    threads, processes = tmp_path / "threads.jsonl", tmp_path / "processes.jsonl"
    base = [str(music), "--checkpoint", str(trained_checkpoint), "--top", "2"]
    assert main([*base, "--out", str(threads)]) == 0
    assert main([*base, "--out", str(processes), "--workers", "2"]) == 0
    assert processes.read_bytes() == threads.read_bytes()  # same rows, same order
    assert len(threads.read_bytes().splitlines()) == 30
    capsys.readouterr()


def test_another_model_is_refused_then_forced(
    music: Path, trained_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tags.csv"
    args = [str(music), "--out", str(out), "--duration", "2"]
    assert main([*args, "--checkpoint", str(trained_checkpoint)]) == 0
    before = out.read_bytes()
    checkpoint = torch.load(trained_checkpoint, map_location="cpu", weights_only=True)
    for value in checkpoint["state_dict"].values():
        if value.is_floating_point():
            value.mul_(1.01)
    other = tmp_path / "retrained.ckpt"
    torch.save(checkpoint, other)
    capsys.readouterr()
    assert main([*args, "--checkpoint", str(other)]) == 2
    err = next(line for line in capsys.readouterr().err.splitlines() if "error: " in line)
    assert err.startswith(f"error: {out}: written with another model (sha256 ")
    assert err.endswith("pass --force to re-tag everything into it, or choose another --out")
    assert out.read_bytes() == before  # refused: nothing touched
    assert main([*args, "--checkpoint", str(other), "--force"]) == 0
    assert "tagged 30 file(s), skipped 1" in capsys.readouterr().err
    assert out.read_bytes() != before and len(out.read_bytes().splitlines()) == 31
