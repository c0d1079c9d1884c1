"""The teacher-tag head: masked soft BCE, per-tag ROC-AUC against the teacher, top tags shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from datamodules.manifest import read_manifest, write_manifest
from lightning_module.training.metrics import SplitMetrics
from scripts.predict_clip import main as predict_main
from tests.conftest import run_training

#: Soft targets a teacher could give, as a function of the synthetic genre (known by construction).
TAGS = {
    "electronic": {"electronic", "dance"},
    "rock": {"rock", "guitar"},
    "folk": {"acoustic", "guitar"},
}


def tagged_manifest(manifest: Path, out: Path) -> Path:
    """The synthetic manifest plus ``tag_<name>`` soft targets; every 5th row has none (masked)."""
    df = read_manifest(manifest)
    names = sorted(set().union(*TAGS.values()))
    rng = np.random.default_rng(0)
    for name in names:
        hit = df["genre"].map(lambda g, name=name: name in TAGS.get(g, set())).to_numpy()
        soft = np.where(hit, 0.8, 0.1) + rng.uniform(-0.05, 0.05, len(df))
        soft[::5] = np.nan
        df[f"tag_{name}"] = soft
    return write_manifest(df, out / "manifest.csv")


def test_fast_dev_run_with_the_tag_head(synthetic_manifest: Path, tmp_path: Path) -> None:
    manifest = tagged_manifest(synthetic_manifest, tmp_path / "data")
    cli = run_training(tmp_path, manifest, "--trainer.fast_dev_run=1")
    assert cli.model.hparams.tag_names == ["acoustic", "dance", "electronic", "guitar", "rock"]
    assert cli.model.net.heads.heads["tags"].out_features == 5
    metrics = cli.trainer.callback_metrics
    assert float(metrics["train/tag_loss"]) > 0 and torch.isfinite(metrics["val/tag_loss"])


def test_tag_auc_matches_sklearn_and_skips_undefined_tags() -> None:
    metrics = SplitMetrics([], [], [], ["a", "b", "never"])
    rng = np.random.default_rng(1)
    teacher = rng.uniform(0, 1, (64, 3)).astype(np.float32)
    teacher[:, 2] = 0.05  # the teacher never gives "never": no AUC for it
    logits = (teacher - 0.5) * 4 + rng.normal(0, 1.0, teacher.shape).astype(np.float32)
    mask = np.ones_like(teacher, dtype=bool)
    mask[:8, 0] = False  # no teacher value: ignored
    for rows in (slice(0, 32), slice(32, 64)):
        metrics.update(
            {"tags": torch.from_numpy(logits[rows])},
            {"tags": torch.from_numpy(teacher[rows]), "tag_mask": torch.from_numpy(mask[rows])},
        )
    values = metrics.compute("val")
    for j, name in enumerate(["a", "b"]):
        rows = mask[:, j]
        expected = roc_auc_score(teacher[rows, j] > 0.5, logits[rows, j])
        assert abs(float(values[f"val/tag_auc/{name}"]) - expected) < 0.01
    assert "val/tag_auc/never" not in values
    mean = (float(values["val/tag_auc/a"]) + float(values["val/tag_auc/b"])) / 2
    assert float(values["val/tag_auc_mean"]) == pytest.approx(mean)
    assert metrics.compute("val") == {}  # reset after logging


def test_predict_clip_shows_top_tags(synthetic_manifest: Path, tmp_path: Path, capsys) -> None:
    manifest = tagged_manifest(synthetic_manifest, tmp_path / "data")
    run_training(tmp_path, manifest, "--trainer.max_epochs=1", "--test_after_fit=false")
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    clip = read_manifest(manifest)["audio_path"].iloc[0]
    assert predict_main([clip, "--checkpoint", str(checkpoint), "--top", "2"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith("tags:"))
    shown = [part.split()[-2] for part in line.removeprefix("  tags:").split(",")]
    assert len(shown) == 2 and set(shown) <= set().union(*TAGS.values())
    assert predict_main([clip, "--checkpoint", str(checkpoint), "--json", "--top", "5"]) == 0
    tags = json.loads(capsys.readouterr().out)["tags"]
    probabilities = [t["probability"] for t in tags]
    assert len(tags) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


def test_a_single_teacher_tag_has_its_auc_too() -> None:
    """One tag column is a valid tag head (torchmetrics' multilabel metrics need two: an ignored
    twin makes up the second, as for the genre tags)."""
    metrics = SplitMetrics([], [], [], ["jazz"])
    teacher = torch.tensor([[0.9], [0.1], [0.8], [0.2]])
    logits = torch.tensor([[2.0], [-1.0], [0.5], [1.0]])
    metrics.update({"tags": logits}, {"tags": teacher, "tag_mask": torch.ones(4, 1)})
    values = metrics.compute("val")
    assert set(values) == {"val/tag_auc/jazz", "val/tag_auc_mean"}
    assert float(values["val/tag_auc/jazz"]) == pytest.approx(0.75, abs=0.01)
