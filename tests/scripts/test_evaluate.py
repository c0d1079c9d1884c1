"""evaluate.py on a tiny trained checkpoint: report files, metrics in range, unknown labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamodules.manifest import read_manifest, write_manifest
from lightning_module.evaluation.evaluator import classification_scores, sign_targets
from scripts import evaluate


@pytest.fixture
def eval_manifest(synthetic_manifest: Path, tmp_path: Path) -> Path:
    """The synthetic manifest as two sources, with one val label the model never saw."""
    df = read_manifest(synthetic_manifest)
    val = df.index[df["split"] == "val"]
    df.loc[val[::2], "source"] = "other"
    df.loc[val[0], "genre"] = "polka"
    # ±1 signs as their own column, the way 4Q ships them.
    df["arousal_sign"] = np.where(df["energy"] > df["energy"].median(), 1, -1)
    return write_manifest(df, tmp_path / "manifest.csv")


def test_evaluate_writes_a_report_with_baselines(
    trained_checkpoint: Path, eval_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    args = [str(trained_checkpoint), str(eval_manifest), "--split", "val", "--out", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    assert evaluate.main(args) == 0
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text()
    assert set(report["sources"]) == {"synthetic", "other", "all"} or len(report["sources"]) == 3
    assert report["split"] == "val" and "scripts/evaluate.py" in report["command"]
    assert report["hparams"]["genre_names"]  # the checkpoint's hparams ride along
    n_val = int((read_manifest(eval_manifest)["split"] == "val").sum())
    assert report["counts"]["rows_evaluated"] == n_val
    for source, entry in report["sources"].items():
        for task in ("genre", "mood"):
            scores = entry[task]
            for model in ("cnn", "baseline", "majority"):
                for metric in ("accuracy", "macro_f1"):
                    assert 0.0 <= scores[model][metric] <= 1.0, (source, task, model, metric)
            assert (out / scores["confusion"]["png"]).stat().st_size > 1000
            assert np.sum(scores["confusion"]["matrix"]) == scores["cnn"]["n"]
        auc = entry["features"]["energy"]["auc_vs_sign"]
        assert 0.0 <= auc["cnn"] <= 1.0 and 0.0 <= auc["baseline"] <= 1.0
        r = entry["features"]["tempo"]["cnn"]["pearson_r"]
        assert r is None or -1.0 <= r <= 1.0
    # The unknown label is reported, not scored, and the run did not crash on it.
    unknown = [e["genre"]["unknown_labels"] for e in report["sources"].values()]
    assert {"polka": 1} in unknown
    assert report["sources"]["all"]["genre"]["cnn"]["n"] == n_val - 1
    assert "Unknown genre labels (not scored): polka (1)" in markdown
    assert "handcrafted LR" in markdown and "Where the CNN does not beat" in markdown


def test_evaluate_refuses_bad_input_in_one_line(
    trained_checkpoint: Path, eval_manifest: Path, tmp_path: Path, capsys
) -> None:
    assert evaluate.main([str(tmp_path / "none.ckpt"), str(eval_manifest)]) == 2
    assert evaluate.main([str(trained_checkpoint), str(eval_manifest), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "none.ckpt" in err[0] and "no rows in split 'test'" in err[1]


def test_closed_set_scores_and_sign_targets() -> None:
    names = ["classical", "jazz", "pop", "rock"]
    probs = np.array([[0.1, 0.1, 0.6, 0.2], [0.1, 0.5, 0.0, 0.4]])
    scores = classification_scores(["rock", "jazz"], probs, names)
    # Closed set (rock vs jazz only): both right; open set: the first is called pop.
    assert scores["accuracy"] == 1.0 and scores["accuracy_open"] == 0.5
    weak = pd.DataFrame({"energy": [0.0, 1.0, None]})
    assert sign_targets(weak, "energy").tolist()[:2] == [-1.0, 1.0]
    signs = pd.DataFrame({"valence": [0.0, 1.0], "valence_sign": [-1, 1]})
    assert sign_targets(signs, "valence").tolist() == [-1.0, 1.0]
