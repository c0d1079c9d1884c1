"""Shared fixtures: tiny synthetic data and a tiny trained checkpoint, made once per session."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported: idle OpenMP threads sleep instead of spinning, so tests on a busy
# machine do not steal each other's cores (see docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def run_training(workdir: Path, manifest: Path, *extra: str):
    """Run the real training CLI with the default config forced tiny, on CPU, inside ``workdir``.

    The config's relative paths (checkpoints/, logs/, data/) then land in ``workdir``.
    """
    from lightning_module.training.cli import main

    workdir.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        return main(tiny_train_args(manifest, *extra))
    finally:
        os.chdir(previous)


def tiny_train_args(manifest: Path, *extra: str) -> list[str]:
    """CLI arguments that run the real default config, forced tiny, on CPU."""
    return [
        f"--data.manifest={manifest}",
        "--data.num_workers=0",
        "--data.batch_size=8",
        "--data.crops_per_clip=1",
        "--data.crop_seconds=2.0",
        "--model.width=8",
        "--model.embed_dim=32",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 short synthetic clips (2 per genre x mood), mp3 and wav."""
    from datamodules.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("synthetic")
    return generate_synthetic(
        out, clips_per_class=3, duration=4.0, seed=1, val_fraction=0.34, test_fraction=0.0
    )


@pytest.fixture(scope="session")
def trained_checkpoint(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a 2-epoch run through the real CLI on the tiny synthetic set."""
    workdir = tmp_path_factory.mktemp("run")
    run_training(workdir, synthetic_manifest, "--trainer.max_epochs=2", "--test_after_fit=false")
    best = sorted((workdir / "checkpoints").glob("best*.ckpt"))
    assert best, "training wrote no best checkpoint"
    return best[-1]


def write_tone(
    path: Path, seconds: float = 2.0, sr: int = 22050, channels: int = 1, **kwargs
) -> Path:
    """A 440 Hz tone with a little noise, written with soundfile (format from the extension)."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    sf.write(path, data.astype(np.float32), sr, **kwargs)
    return path
