"""Ship a trained model as package data: the ONNX file the runtime runs, a slim checkpoint to
fine-tune from, and ``model.json`` naming both by sha256 (``scripts/ship_model.py``).

Needs torch (export); the model card and the weights licence are written by hand beside them
(``lightning_module/shipped/MODEL_CARD.md``, ``LICENSE-weights.md``) and checked against the
model by the tests.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import torch

from datamodules.io import atomic_path, file_sha256, write_json_atomic
from lightning_module.inference.checkpoint import load_checkpoint, load_network
from lightning_module.inference.export import ExportReport, export_onnx
from lightning_module.inference.shipped import (
    CHECKPOINT_NAME,
    INFO_NAME,
    ONNX_NAME,
    shipped_dir,
)

#: The weights' licence (SPDX): the training audio is research data, not licensed for
#: redistribution, so the weights are non-commercial, apart from the MIT code.
WEIGHTS_LICENSE = "CC-BY-NC-SA-4.0"


def ship_model(
    checkpoint: str | os.PathLike,
    model_id: str,
    version: str,
    out: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], ExportReport]:
    """Write ``model.onnx``, ``tagger.ckpt`` and ``model.json`` of ``checkpoint`` into ``out``
    (default: the package's ``shipped/`` folder). Returns model.json's content and the export
    report (onnxruntime checked against PyTorch; a mismatch raises and writes no ONNX file).
    """
    out = Path(out) if out is not None else shipped_dir()
    source = load_checkpoint(checkpoint)
    net, spec = load_network(checkpoint)
    # Only what inference and fine-tuning read: no optimiser state, no loops, no callbacks.
    slim = {
        "state_dict": source["state_dict"],
        "hyper_parameters": source["hyper_parameters"],
    }
    with atomic_path(out / CHECKPOINT_NAME) as tmp:
        torch.save(slim, tmp)
    report = export_onnx(net, spec, out / ONNX_NAME)
    info = {
        "id": model_id,
        "version": version,
        "weights_license": WEIGHTS_LICENSE,
        "files": {
            ONNX_NAME: file_sha256(out / ONNX_NAME),
            CHECKPOINT_NAME: file_sha256(out / CHECKPOINT_NAME),
        },
        "source_checkpoint_sha256": file_sha256(checkpoint),
        "built": dt.date.today().isoformat(),
        "genres": list(spec.genre_names),
        "moods": list(spec.mood_names),
        "features": list(spec.trained_features),
        "genre_tags": list(spec.genre_tag_names),
        "keys": list(spec.key_names),
        "tempo_bins": spec.tempo_bins,
        "train_sources": dict(spec.train_sources),
        "sample_rate": spec.sample_rate,
        "window_seconds": spec.crop_seconds,
    }
    write_json_atomic(out / INFO_NAME, info)
    return info, report
