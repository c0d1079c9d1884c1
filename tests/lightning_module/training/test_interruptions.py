"""A run killed with SIGKILL resumes from last.ckpt exactly where it was; a kill in the middle of
writing a checkpoint leaves the previous one loadable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lightning_module.training.checkpoint_io import TEMP_MARK, atomic_torch_save
from lightning_module.training.cli import FORCED_CALLBACKS
from tests.conftest import REPO_ROOT, run_training, tiny_train_args

PROBES = "tests.lightning_module.training.train_probes"
KILL_AT_STEP = 4  # mid-epoch: an epoch of the tiny set has ~6 steps
EVERY_N_STEPS = 2


def _config_with_step_checkpoints(tmp_path: Path) -> Path:
    """The real default config, with the periodic last.ckpt every 2 steps instead of 200."""
    periodic = FORCED_CALLBACKS["periodic_checkpoint"]
    assert periodic[1].get("every_n_train_steps"), "the CLI lost its periodic last.ckpt callback"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"periodic_checkpoint": {"every_n_train_steps": EVERY_N_STEPS}}))
    return path


def test_sigkill_then_resume_continues_at_the_same_step(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    config = _config_with_step_checkpoints(tmp_path)
    common = ["--config", str(config), "--test_after_fit=false", "--trainer.max_epochs=2"]
    ready = tmp_path / "paused"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "train.py"),
        *common,
        *tiny_train_args(synthetic_manifest),
        f"--trainer.callbacks+={PROBES}.PauseAtStep",
        f"--trainer.callbacks.step={KILL_AT_STEP}",
        f"--trainer.callbacks.ready_file={ready}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "train.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert ready.exists(), (tmp_path / "train.log").read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL

    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == KILL_AT_STEP
    assert not list(last.parent.glob(f".*{TEMP_MARK}*"))

    probe = tmp_path / "resume.json"
    resumed = run_training(
        tmp_path,
        synthetic_manifest,
        *common,
        f"--ckpt_path={last}",
        f"--trainer.callbacks+={PROBES}.ResumeProbe",
        f"--trainer.callbacks.out_file={probe}",
    )
    start = json.loads(probe.read_text())
    assert start["checkpoint_io"] == "AtomicCheckpointIO"
    assert start["global_step"] == KILL_AT_STEP
    # optimizer moments and the LR schedule came back, not a fresh AdamW / warm-up
    assert start["optimizer_steps"] == [float(KILL_AT_STEP)]
    assert start["scheduler_last_epoch"] == KILL_AT_STEP
    assert start["lr"] == pytest.approx(saved["lr_schedulers"][0]["_last_lr"][0])
    # same number of steps as an uninterrupted 2-epoch run
    steps_per_epoch = resumed.trainer.num_training_batches
    assert resumed.trainer.global_step == 2 * steps_per_epoch
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 2 * steps_per_epoch
    adam_steps = {float(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {float(2 * steps_per_epoch)}


_WRITER = """
import sys, torch
from lightning_module.training.checkpoint_io import atomic_torch_save
big = {"state_dict": {"w": torch.full((16, 1024, 1024), 2.0)}, "global_step": 2}
atomic_torch_save(big, sys.argv[1])  # killed while this runs
"""


def test_kill_while_saving_leaves_previous_checkpoint_loadable(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for _attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], env=env)
        partial: list[Path] = []
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            partial = [p for p in tmp_path.glob(f".*{TEMP_MARK}*") if p.stat().st_size > 1e6]
            if partial:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
        if partial and proc.returncode == -signal.SIGKILL:
            break
        atomic_torch_save({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)
    else:
        pytest.fail("never caught the writer mid-save")
    # killed mid-write: a partial temp file is left, the checkpoint itself is the previous one
    assert partial[0].exists() and partial[0].stat().st_size < 16 * 1024 * 1024 * 4
    previous = torch.load(target, weights_only=True)
    assert previous["global_step"] == 1 and previous["state_dict"]["w"].tolist() == [1.0] * 3
    # the next save cleans the leftover up
    atomic_torch_save({"state_dict": {"w": torch.zeros(3)}, "global_step": 3}, target)
    assert not list(tmp_path.glob(f".*{TEMP_MARK}*"))
    assert torch.load(target, weights_only=True)["global_step"] == 3
