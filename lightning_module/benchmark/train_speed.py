"""The training rows: clips/s of real ``Trainer.fit`` steps fed from the cache, the share of step
time spent computing rather than waiting for data, and peak memory (CUDA
``max_memory_allocated``, or the process' peak RSS on CPU).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
import yaml

from datamodules.loading.datamodule import MusicDataModule
from datamodules.manifest import read_manifest
from datamodules.schema import TASK_FIELDS
from lightning_module.benchmark.measure import (
    REPO_ROOT,
    own_peak_rss_mb,
    reset_own_peak_rss,
    sync_device,
)
from lightning_module.training.module import MusicTagger

if TYPE_CHECKING:
    from lightning_module.benchmark.core import BenchmarkConfig

DEFAULT_CONFIG = REPO_ROOT / "configs" / "train.yaml"


def model_defaults(config_path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The ``model`` section of the default training config: the model users actually train."""
    config = yaml.safe_load(config_path.read_text()) or {}
    return dict(config.get("model") or {})


class StepTimer(pl.Callback):
    """Times training steps after ``warmup``: wall time, and the part not spent waiting for data.

    The step's compute time runs from ``on_train_batch_start`` (the batch has arrived) to
    ``on_train_batch_end`` after a CUDA synchronise; the rest of the wall time is data wait.
    """

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.compute: list[float] = []
        self.first: float | None = None
        self.last: float | None = None
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync_device(self.device)
        now = time.perf_counter()
        if batch_idx + 1 == self.warmup:
            self.first = now  # timing starts when the last warm-up step ends
        elif batch_idx + 1 > self.warmup:
            self.compute.append(now - self._start)
            self.last = now


def measure_training(
    manifest: Path, cfg: BenchmarkConfig, batch_size: int, save_to: Path | None = None
) -> dict[str, Any]:
    """Clips/s of ``cfg.train_steps`` real ``Trainer.fit`` steps of the default model."""
    steps = cfg.warmup_steps + cfg.train_steps
    n_train = int((read_manifest(manifest, check_audio=False)["split"] == "train").sum())
    dm_kwargs: dict[str, Any] = {
        "data_dir": str(cfg.work_dir),
        "crop_seconds": cfg.crop_seconds,
        "batch_size": batch_size,
        # enough random crops per clip for every step to get a full batch
        "crops_per_clip": max(1, math.ceil(steps * batch_size / max(n_train, 1))),
        "augment": cfg.augment,
    }
    if cfg.num_workers is not None:
        dm_kwargs["num_workers"] = cfg.num_workers
    dm = MusicDataModule(str(manifest), **dm_kwargs)
    model = MusicTagger(
        **{**model_defaults(), **{k: getattr(dm, k) for k in TASK_FIELDS}},
        sample_rate=dm.hparams.sample_rate,
        crop_seconds=cfg.crop_seconds,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
    )
    timer = StepTimer(cfg.warmup_steps, cfg.device)
    trainer = pl.Trainer(
        accelerator="gpu" if cfg.device.startswith("cuda") else "cpu",
        devices=1,
        precision=cfg.precision,
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if cfg.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_reset = reset_own_peak_rss()
    trainer.fit(model, datamodule=dm)
    if timer.first is None or timer.last is None or not timer.compute:
        raise RuntimeError(f"training ran {trainer.global_step} steps, fewer than {steps}")
    seconds = timer.last - timer.first
    result = {
        "batch_size": batch_size,
        "crop_seconds": cfg.crop_seconds,
        "precision": cfg.precision,
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "num_workers": dm.loader_workers,
        "augment": cfg.augment,
        "steps_timed": len(timer.compute),
        "clips_per_s": len(timer.compute) * batch_size / seconds,
        "compute_share": min(1.0, sum(timer.compute) / seconds),
    }
    if cfg.device.startswith("cuda"):
        result["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = own_peak_rss_mb()
    result["peak_rss_scope"] = "this run" if rss_reset else "process lifetime"
    if save_to is not None:
        trainer.save_checkpoint(save_to, weights_only=True)
    return result
