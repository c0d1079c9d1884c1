"""The multi-label genre-tag head: masked BCE on hard 0/1 AllMusic genre tags, per-tag ROC-AUC and
PR-AUC, and the tags shown by predict_clip, written by folder runs and scored by evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from datamodules.manifest import read_manifest, write_manifest
from lightning_module.inference.output import format_prediction, prediction_columns
from lightning_module.inference.tagger import ClipPrediction
from lightning_module.model.losses import LOSS_NAMES, MultiTaskLoss
from lightning_module.model.settings import LossWeights
from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec
from lightning_module.training.metrics import SplitMetrics
from scripts import evaluate
from scripts.predict_clip import main as predict_main
from tests.conftest import run_training

#: AllMusic-style genre tags of each synthetic genre (names with "/", "&" and a space on purpose).
GENRE_TAGS = {
    "electronic": {"Electronic"},
    "rock": {"Pop/Rock"},
    "jazz": {"Jazz"},
    "classical": {"Classical", "Stage & Screen"},
    "hiphop": {"Rap", "R&B"},
    "folk": {"Folk", "Pop/Rock"},
}
NAMES = sorted(set().union(*GENRE_TAGS.values()))


def genre_tagged_manifest(manifest: Path, out: Path) -> Path:
    """The synthetic manifest plus ``genre_tag_<name>`` 0/1 columns; every 4th row has none."""
    df = read_manifest(manifest)
    masked = np.arange(len(df)) % 4 == 0
    for name in NAMES:
        hit = df["genre"].map(lambda g, name=name: name in GENRE_TAGS[g]).to_numpy(float)
        df[f"genre_tag_{name}"] = np.where(masked, np.nan, hit)
    return write_manifest(df, out / "manifest.csv")


# -- the loss ------------------------------------------------------------------------------------
def _loss_and_grad(
    loss_fn: MultiTaskLoss, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.clone().requires_grad_(True)
    out = {"genre_tags": logits, "embedding": torch.zeros(len(logits), 4)}
    losses = loss_fn(out, {"genre_tags": targets, "genre_tag_mask": mask})
    losses["loss"].backward()
    return losses["genre_tag_loss"].detach(), logits.grad


@pytest.mark.parametrize("row_mask", [True, False], ids=["row-mask", "entry-mask"])
def test_masked_rows_change_neither_loss_nor_gradient(row_mask: bool) -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    targets = (torch.rand(6, 4) > 0.5).float()
    rows = torch.tensor([True, False, True, True, False, True])
    mask = rows if row_mask else rows[:, None].expand(6, 4).clone()
    loss_fn = MultiTaskLoss(LossWeights(genre_tags=0.5))
    loss, grad = _loss_and_grad(loss_fn, logits, targets, mask)
    garbage = targets.clone()
    garbage[~rows] = torch.tensor([float("nan"), 7.0, -3.0, 1.0])  # anything at all
    loss2, grad2 = _loss_and_grad(loss_fn, logits, garbage, mask)
    assert torch.isfinite(loss) and torch.equal(loss, loss2) and torch.equal(grad, grad2)
    assert (grad[~rows] == 0).all() and (grad[rows] != 0).any()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[rows], targets[rows])
    assert loss == pytest.approx(float(expected), rel=1e-6)
    nothing, grad3 = _loss_and_grad(loss_fn, logits, targets, torch.zeros_like(mask))
    assert nothing.item() == 0.0 and (grad3 == 0).all()  # no row has genre tags: 0, with grad


def test_loss_names_and_weight() -> None:
    assert "genre_tag_loss" in LOSS_NAMES and LOSS_NAMES[-1] == "distill_loss"
    # The positional arguments module.py passes still land where they did.
    loss_fn = MultiTaskLoss(LossWeights(genre_tags=0.25))
    logits = torch.zeros(2, 3)
    out = {"genre_tags": logits, "embedding": torch.zeros(2, 4)}
    batch = {"genre_tags": torch.ones(2, 3), "genre_tag_mask": torch.ones(2, dtype=torch.bool)}
    losses = loss_fn(out, batch)
    assert set(losses) == set(LOSS_NAMES)
    assert losses["genre_tag_loss"].item() == pytest.approx(np.log(2.0), rel=1e-6)
    assert losses["loss"].item() == pytest.approx(0.25 * np.log(2.0), rel=1e-6)
    no_head = MultiTaskLoss()({"embedding": torch.zeros(2, 4)}, {})
    assert no_head["genre_tag_loss"].item() == 0.0


# -- metrics -------------------------------------------------------------------------------------
def test_per_tag_auc_and_ap_match_sklearn_and_skip_undefined_tags() -> None:
    names = ["Jazz", "Pop/Rock", "Never"]
    metrics = SplitMetrics([], [], [], [], genre_tag_names=names)
    rng = np.random.default_rng(3)
    truth = (rng.uniform(0, 1, (80, 3)) > 0.6).astype(np.float32)
    truth[:, 2] = 0.0  # no clip has "Never": no AUC/AP for it
    logits = (truth - 0.5) * 2 + rng.normal(0, 1.0, truth.shape).astype(np.float32)
    rows = np.ones(80, dtype=bool)
    rows[::5] = False  # no genre tags: ignored, whatever their targets say
    truth_seen = truth.copy()
    truth_seen[~rows] = 1.0
    for part in (slice(0, 40), slice(40, 80)):
        metrics.update(
            {"genre_tags": torch.from_numpy(logits[part])},
            {
                "genre_tags": torch.from_numpy(truth_seen[part]),
                "genre_tag_mask": torch.from_numpy(rows[part]),
            },
        )
    values = metrics.compute("val")
    for j, name in enumerate(names[:2]):
        auc = roc_auc_score(truth[rows, j], logits[rows, j])
        ap = average_precision_score(truth[rows, j], logits[rows, j])
        assert float(values[f"val/genre_tag_auc/{name}"]) == pytest.approx(auc, abs=0.01)
        assert float(values[f"val/genre_tag_ap/{name}"]) == pytest.approx(ap, abs=0.02)
    assert not any("Never" in k for k in values)
    for key in ("auc", "ap"):
        mean = np.mean([float(values[f"val/genre_tag_{key}/{n}"]) for n in names[:2]])
        assert float(values[f"val/genre_tag_{key}_mean"]) == pytest.approx(mean)
    assert metrics.compute("val") == {}  # reset after logging


def test_a_model_without_the_head_says_nothing_about_genre_tags() -> None:
    prediction = ClipPrediction("a.wav", 3.0, 1, genre=[("rock", 0.9)])
    assert "genre tags" not in format_prediction(prediction)
    assert "genre_tags" not in prediction.to_dict()
    assert "genre_tags" not in prediction_columns(TaggerSpec(genre_names=("rock",)))


# -- end to end ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def genre_tag_run(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """A 1-epoch run on the synthetic set with genre tags: (manifest, checkpoint, cli)."""
    tmp = tmp_path_factory.mktemp("genre_tags")
    manifest = genre_tagged_manifest(synthetic_manifest, tmp / "data")
    cli = run_training(
        tmp,
        manifest,
        "--trainer.max_epochs=1",
        "--test_after_fit=false",
        "--data.min_genre_tag_count=2",
        "--model.loss_weights.genre_tags=0.5",
    )
    return manifest, tmp / "checkpoints" / "last.ckpt", cli


def test_fit_links_the_genre_tags_and_logs_their_metrics(genre_tag_run) -> None:
    _, checkpoint, cli = genre_tag_run
    assert cli.model.hparams.genre_tag_names == NAMES
    assert cli.model.hparams.loss_weights["genre_tags"] == 0.5
    assert cli.model.net.heads.heads["genre_tags"].out_features == len(NAMES)
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["train/genre_tag_loss"]) and metrics["val/genre_tag_loss"] > 0
    assert 0.0 <= float(metrics["val/genre_tag_auc_mean"]) <= 1.0
    assert 0.0 <= float(metrics["val/genre_tag_ap_mean"]) <= 1.0
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert saved["genre_tag_names"] == NAMES and saved["format_version"] == FORMAT_VERSION


def test_predict_clip_shows_the_top_genre_tags(genre_tag_run, capsys) -> None:
    manifest, checkpoint, _ = genre_tag_run
    clip = read_manifest(manifest)["audio_path"].iloc[1]
    assert predict_main([clip, "--checkpoint", str(checkpoint)]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.startswith("  genre tags: "))
    shown = [part.rsplit(" ", 1) for part in line.removeprefix("  genre tags: ").split(", ")]
    assert len(shown) == 3 and {name for name, _ in shown} <= set(NAMES)
    probabilities = [float(p) for _, p in shown]
    assert probabilities == sorted(probabilities, reverse=True)
    assert predict_main([clip, "--checkpoint", str(checkpoint), "--json", "--top", "1"]) == 0
    tags = json.loads(capsys.readouterr().out)["genre_tags"]
    assert sorted(tags) == NAMES  # every tag in JSON, whatever --top says
    assert list(tags.values()) == sorted(tags.values(), reverse=True)
    assert all(0.0 <= p <= 1.0 for p in tags.values())


def test_folder_csv_has_the_top_genre_tags(genre_tag_run, tmp_path: Path, capsys) -> None:
    manifest, checkpoint, _ = genre_tag_run
    folder = Path(read_manifest(manifest)["audio_path"].iloc[0]).parent
    out = tmp_path / "tags.csv"
    assert predict_main([str(folder), "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows and all(len(r["genre_tags"].split("; ")) == 3 for r in rows)
    assert {r["genre_tags"].split("; ")[0].rsplit(" ", 1)[0] for r in rows} <= set(NAMES)


def test_evaluate_reports_per_tag_auc_and_ap(genre_tag_run, tmp_path: Path, capsys) -> None:
    manifest, checkpoint, _ = genre_tag_run
    out = tmp_path / "report"
    args = [str(checkpoint), str(manifest), "--split", "val", "--out", str(out), "--no-baseline"]
    assert evaluate.main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "report.json").read_text())
    scores = report["sources"]["synthetic"]["genre_tags"]
    df = read_manifest(manifest)
    val = df[(df["split"] == "val") & df["genre_tag_Jazz"].notna()]
    assert scores["n"] == len(val)  # clips with genre tags only
    for name, tag in scores["tags"].items():
        assert tag["positives"] == int(val[f"genre_tag_{name}"].sum()), name
        if tag["roc_auc"] is not None:
            assert 0.0 <= tag["roc_auc"] <= 1.0 and 0.0 <= tag["pr_auc"] <= 1.0
    defined = [t["roc_auc"] for t in scores["tags"].values() if t["roc_auc"] is not None]
    assert scores["n_defined"] == len(defined) > 0
    assert scores["mean_roc_auc"] == pytest.approx(np.mean(defined))
    markdown = (out / "report.md").read_text()
    assert "genre tags: mean ROC-AUC" in markdown and "| Pop/Rock |" in markdown


def test_a_single_genre_tag_has_metrics_too() -> None:
    metrics = SplitMetrics([], [], [], [], genre_tag_names=["Jazz"])
    truth = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    logits = torch.tensor([[2.0], [-1.0], [0.5], [1.0]])
    metrics.update(
        {"genre_tags": logits},
        {"genre_tags": truth, "genre_tag_mask": torch.ones(4, dtype=torch.bool)},
    )
    values = metrics.compute("val")
    assert set(values) == {
        "val/genre_tag_auc/Jazz",
        "val/genre_tag_ap/Jazz",
        "val/genre_tag_auc_mean",
        "val/genre_tag_ap_mean",
    }
    assert float(values["val/genre_tag_auc/Jazz"]) == pytest.approx(0.75, abs=0.01)
