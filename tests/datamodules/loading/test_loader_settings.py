"""DataLoader defaults: a worker per core, persistent workers, prefetching, pinned only for CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from datamodules.loading.datamodule import MusicDataModule


def test_loader_defaults_scale_with_the_machine(synthetic_manifest: Path, tmp_path: Path) -> None:
    dm = MusicDataModule(str(synthetic_manifest), data_dir=str(tmp_path), crop_seconds=1.0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert dm.hparams.num_workers is None
    assert loader.num_workers == dm.loader_workers == min(8, os.cpu_count() or 1)
    assert loader.persistent_workers and loader.prefetch_factor == 4
    assert loader.pin_memory == torch.cuda.is_available()


def test_loader_settings_are_honoured(synthetic_manifest: Path, tmp_path: Path) -> None:
    dm = MusicDataModule(
        str(synthetic_manifest),
        data_dir=str(tmp_path),
        crop_seconds=1.0,
        num_workers=0,
        pin_memory=True,
        prefetch_factor=2,
    )
    dm.setup("fit")
    loader = dm.val_dataloader()
    assert loader.num_workers == 0 and loader.prefetch_factor is None  # no workers: no prefetch
    assert not loader.persistent_workers and loader.pin_memory
