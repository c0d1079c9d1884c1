"""Callbacks that tests put into a real training run (``--trainer.callbacks+=...``)."""

from __future__ import annotations

import json
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
