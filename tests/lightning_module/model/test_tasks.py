"""The task table drives every consumer: a toy task registered in ``TASKS`` reaches the network,
the loss, the metrics, ONNX, the Tagger and every output format; the key head reaches them too."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from datamodules.analysis.key import KEY_NAMES
from lightning_module.inference.export import export_onnx
from lightning_module.inference.formats.csv_rows import (
    prediction_columns,
    prediction_from_row,
    prediction_record,
)
from lightning_module.inference.formats.json_lines import prediction_dict, prediction_from_dict
from lightning_module.inference.formats.text import format_prediction
from lightning_module.inference.tagger import Tagger
from lightning_module.model.losses import MultiTaskLoss
from lightning_module.model.network import build_network
from lightning_module.model.settings import LogMelSettings
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS, Task, loss_names, output_names
from lightning_module.training.metrics import SplitMetrics

RATE = 16000
#: A toy single-label head reusing the mood labels (a task needs a spec field for its labels).
TOY = Task(
    "era",
    "single_label",
    labels="mood_names",
    loss_name="era_loss",
    metrics=("acc", "f1"),
    target="era",
    top_column=True,
    class_prefix="era",
    text="era",
)


@pytest.fixture
def toy_task() -> Iterator[Task]:
    TASKS.append(TOY)
    try:
        yield TOY
    finally:
        TASKS.remove(TOY)


def _spec(**kwargs) -> TaggerSpec:
    return TaggerSpec(
        genre_names=("jazz", "rock"),
        mood_names=("calm", "loud"),
        crop_seconds=1.0,
        logmel=LogMelSettings(n_mels=32),
        width=8,
        embed_dim=16,
        **kwargs,
    )


def _csv_roundtrip(spec: TaggerSpec, prediction) -> dict:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=prediction_columns(spec))
    writer.writeheader()
    writer.writerow(prediction_record(prediction))
    buffer.seek(0)
    return next(csv.DictReader(buffer))


def test_a_toy_task_reaches_every_output(toy_task: Task, tmp_path) -> None:
    assert "era" in output_names() and "era_loss" in loss_names()
    spec = _spec()
    torch.manual_seed(0)
    net = build_network(spec).eval()
    with torch.no_grad():
        out = net(torch.randn(2, RATE))
    assert out["era"].shape == (2, 2)  # the network
    losses = MultiTaskLoss()(out, {"era": torch.tensor([0, 1]), "genre": torch.tensor([0, 1])})
    assert losses["era_loss"] > 0  # the loss
    metrics = SplitMetrics.for_spec(spec)
    metrics.update(out, {"era": torch.tensor([0, 1]), "genre": torch.tensor([0, 1])})
    assert "val/era_acc" in metrics.compute("val")  # the metrics

    export_onnx(net, spec, tmp_path / "toy.onnx")  # ONNX, checked against PyTorch
    tagger = Tagger.from_onnx(tmp_path / "toy.onnx")
    assert "era" in tagger.runner(np.zeros((1, RATE), np.float32))
    prediction = tagger.predict_waveform(np.random.default_rng(0).normal(0, 0.1, 3 * RATE))
    assert [n for n, _ in prediction.classes["era"]] in (["calm", "loud"], ["loud", "calm"])

    as_json = prediction_dict(prediction)  # JSON
    assert as_json["era"][0]["label"] == prediction.classes["era"][0][0]
    assert prediction_from_dict(as_json).classes["era"] == [
        (n, round(p, 4)) for n, p in prediction.classes["era"]
    ]
    row = _csv_roundtrip(spec, prediction)  # CSV
    assert row["era"] == prediction.classes["era"][0][0] and "era:calm" in row
    assert prediction_from_row(row).classes["era"][0][0] == row["era"]
    assert "era:" in format_prediction(prediction)  # text


def test_the_key_head_reaches_every_output(tmp_path) -> None:
    spec = _spec(key_names=KEY_NAMES)
    torch.manual_seed(0)
    net = build_network(spec).eval()
    export_onnx(net, spec, tmp_path / "key.onnx")
    tagger = Tagger.from_onnx(tmp_path / "key.onnx")
    from tests.tonal_audio import cadence

    prediction = tagger.predict_waveform(cadence("A", "minor", RATE))
    # The untrained key head is the DSP estimator: it hears the cadence's key.
    assert prediction.decoded == {
        "key": "A",
        "mode": "minor",
        "key_confidence": prediction.decoded["key_confidence"],
        "camelot": "8A",
    }
    assert 0 < prediction.decoded["key_confidence"] <= 1
    as_json = prediction_dict(prediction)
    assert (as_json["key"], as_json["mode"], as_json["camelot"]) == ("A", "minor", "8A")
    assert prediction_from_dict(as_json).decoded == prediction.decoded
    row = _csv_roundtrip(spec, prediction)
    assert (row["key"], row["mode"], row["camelot"]) == ("A", "minor", "8A")
    assert prediction_from_row(row).decoded == prediction.decoded
    assert "key:     A minor (8A)" in format_prediction(prediction)
