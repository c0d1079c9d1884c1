"""Callbacks that tests put into a real training run (``--trainer.callbacks+=...``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytorch_lightning as pl


class PauseAtStep(pl.Callback):
    """Writes ``ready_file`` and sleeps when training reaches ``step``, so a test can kill it there.

    It acts at the start of the next batch, after every checkpoint of ``step`` has been written.
    """

    def __init__(self, step: int, ready_file: str, seconds: float = 300.0) -> None:
        self.step, self.ready_file, self.seconds = step, ready_file, seconds

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            Path(self.ready_file).write_text(str(trainer.global_step))
            time.sleep(self.seconds)


class ResumeProbe(pl.Callback):
    """Records, when training starts, the step counters the run resumed with (JSON file)."""

    def __init__(self, out_file: str) -> None:
        self.out_file = out_file

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        steps = [float(s["step"]) for s in optimizer.state.values() if "step" in s]
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        Path(self.out_file).write_text(
            json.dumps(
                {
                    "global_step": trainer.global_step,
                    "optimizer_steps": sorted(set(steps)),
                    "scheduler_last_epoch": scheduler.last_epoch,
                    "lr": optimizer.param_groups[0]["lr"],
                    "checkpoint_io": type(trainer.strategy.checkpoint_io).__name__,
                }
            )
        )


class DistributedProbe(pl.Callback):
    """Records, per rank, what that process saw and wrote: ``<out_dir>/rank<N>.json``.

    Training rows per epoch, evaluation batches, the synchronised validation metrics, how often
    the rank's checkpoint writer was called, and its pid (TensorBoard puts the writer's pid in
    every event file name).
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.rows: dict[int, list[int]] = {}
        self.val_items = 0
        self.checkpoint_writes = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def counting_save(*args: object, **kwargs: object) -> None:
            self.checkpoint_writes += 1
            save(*args, **kwargs)

        io.save_checkpoint = counting_save

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict, batch_idx: int
    ) -> None:
        self.rows.setdefault(trainer.current_epoch, []).extend(batch["row"].tolist())

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: dict, *args: object
    ) -> None:
        self.val_items += len(batch["row"])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(
            json.dumps(
                {
                    "rank": trainer.global_rank,
                    "world_size": trainer.world_size,
                    "pid": os.getpid(),
                    "rows": self.rows,
                    "val_items": self.val_items,
                    "val_metrics": metrics,
                    "checkpoint_writes": self.checkpoint_writes,
                    "global_step": trainer.global_step,
                }
            )
        )
