"""A callback that records how each rank was launched: ``<out_dir>/launch<rank>.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist


class LaunchProbe(pl.Callback):
    """Global and node rank, world size, node count, the cluster environment Lightning detected
    (TorchElasticEnvironment under torchrun, SLURMEnvironment under srun), the process-group
    backend and the steps run."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = {
            "rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "environment": type(trainer.strategy.cluster_environment).__name__,
            "backend": dist.get_backend() if dist.is_initialized() else None,
            "global_step": trainer.global_step,
            "pid": os.getpid(),
        }
        Path(self.out_dir, f"launch{trainer.global_rank}.json").write_text(json.dumps(record))
