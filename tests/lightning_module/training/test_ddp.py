"""A real 2-process DDP fit on CPU (gloo) through scripts/train.py: each training clip is seen once
per epoch, validation metrics are synchronised, and only rank 0 writes checkpoints and logs.

The processes are started the way a multi-node run starts them (docs/scale.md): by ``torchrun``
with a static rendezvous (``--nnodes``, ``--node_rank``, ``--master_addr``/``--master_port``), here
one node of two processes; Lightning must pick up torchrun's environment instead of spawning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from datamodules.manifest import read_manifest, write_manifest
from tests.conftest import REPO_ROOT, tiny_train_args

N_TRAIN, N_VAL, BATCH = 32, 8, 8  # 16 train clips per rank: 2 full batches, nothing dropped
EPOCHS = 2


def test_two_process_ddp_fit_on_cpu(synthetic_manifest: Path, tmp_path: Path) -> None:
    df = read_manifest(synthetic_manifest)
    train = df[df["split"] == "train"].head(N_TRAIN)
    val = df[df["split"] == "val"].head(N_VAL)
    assert len(train) == N_TRAIN and len(val) == N_VAL
    manifest = write_manifest(pd.concat([train, val], ignore_index=True), tmp_path / "manifest.csv")
    probes = tmp_path / "probes"
    probes.mkdir()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # What each node of a 2-node job runs with --nnodes=2 and its own --node_rank.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--node_rank=0",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(REPO_ROOT / "scripts" / "train.py"),
        *tiny_train_args(manifest),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.num_nodes=1",
        "--trainer.accelerator=cpu",
        f"--trainer.max_epochs={EPOCHS}",
        f"--data.batch_size={BATCH}",
        "--data.augment=false",
        "--test_after_fit=false",
        "--trainer.callbacks+=tests.lightning_module.training.train_probes.DistributedProbe",
        f"--trainer.callbacks.out_dir={probes}",
        "--trainer.callbacks+=tests.lightning_module.training.launch_probe.LaunchProbe",
        f"--trainer.callbacks.out_dir={probes}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((probes / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, launch in enumerate(
        json.loads((probes / f"launch{r}.json").read_text()) for r in (0, 1)
    ):
        assert (launch["rank"], launch["world_size"], launch["num_nodes"]) == (rank, 2, 1)
        assert launch["environment"] == "TorchElasticEnvironment"  # torchrun's, not a spawn
        assert launch["backend"] == "gloo" and launch["pid"] == ranks[rank]["pid"]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["pid"] != ranks[1]["pid"]

    # DistributedSampler: the ranks split every epoch's clips between them, no clip twice
    for epoch in map(str, range(EPOCHS)):
        seen = [r["rows"][epoch] for r in ranks]
        assert len(seen[0]) == len(seen[1]) == N_TRAIN // 2
        assert sorted(seen[0] + seen[1]) == list(range(N_TRAIN))
    assert ranks[0]["rows"]["0"] != ranks[0]["rows"]["1"]  # reshuffled per epoch
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == EPOCHS * N_TRAIN // 2 // BATCH

    # each rank evaluated half of the validation windows, yet both report the same metrics
    assert ranks[0]["val_items"] == ranks[1]["val_items"] > 0
    assert ranks[0]["val_metrics"] and ranks[0]["val_metrics"] == ranks[1]["val_metrics"]

    # only rank 0 writes: checkpoint writer calls, TensorBoard event files (named by pid)
    assert ranks[0]["checkpoint_writes"] > 0 and ranks[1]["checkpoint_writes"] == 0
    events = list((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert events and all(f".{ranks[0]['pid']}." in e.name for e in events)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == ranks[0]["global_step"]
