"""Student against teacher: the right/wrong split adds up, a student that is its teacher agrees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamodules.loading.teacher_targets import TeacherOutputs
from lightning_module.evaluation.evaluator import Evaluator, tag_rows
from lightning_module.evaluation.fidelity import class_fidelity
from scripts import distill_fidelity


def test_class_fidelity_splits_right_and_wrong() -> None:
    names = ["a", "b", "c"]
    teacher = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    student = np.array([[0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
    truth = pd.Series(["a", "b", "a", None])
    r = class_fidelity(teacher, student, names, truth)
    assert r["n"] == 4 and r["agreement"] == pytest.approx(0.5)
    assert r["n_labelled"] == 3
    assert (r["both"], r["teacher_only"], r["student_only"], r["neither"]) == (1, 1, 0, 1)
    assert r["teacher_acc"] - r["student_acc"] == pytest.approx(1 / 3)
    assert r["kl"] > 0.1
    assert class_fidelity(teacher, teacher, names, truth)["kl"] == pytest.approx(0.0, abs=1e-9)


def _teacher_from(tagger, rows: pd.DataFrame, cache, roll: int) -> TeacherOutputs:
    """One window per clip holding the student's own clip outputs (classes rolled by ``roll``)."""
    preds = tag_rows(tagger, rows, cache, None)
    spec, n = tagger.spec, len(rows)
    heads = {t: np.roll(preds.probs[t], roll, axis=1) for t in ("genre", "mood")}
    finite = np.isfinite(preds.features).all(0)  # features the model was not trained on: NaN
    heads["features"] = preds.features[:, finite]
    return TeacherOutputs(
        track_ids=[str(t) for t in rows["track_id"]],
        offset=np.arange(n + 1),
        start=np.zeros(n, dtype=np.float32),
        window_seconds=3.0,
        heads={k: v.astype(np.float32) for k, v in heads.items()},
        names={
            "genre": list(spec.genre_names),
            "mood": list(spec.mood_names),
            "features": [n for n, ok in zip(spec.feature_names, finite, strict=True) if ok],
        },
    )


def test_a_student_that_is_its_teacher_agrees_and_a_missing_clip_is_named(
    trained_checkpoint: Path, synthetic_manifest: Path, tmp_path: Path, capsys
) -> None:
    cache_dir = tmp_path / "cache"
    evaluator = Evaluator(
        trained_checkpoint, synthetic_manifest, split="val", cache_dir=cache_dir, baseline=False
    )
    rows = evaluator.manifest[evaluator.manifest["split"] == "val"].reset_index(drop=True)
    cache = evaluator.cache_for(rows)
    same = _teacher_from(evaluator.tagger, rows, cache, roll=0)
    same.save(tmp_path / "same.npz")
    out = tmp_path / "report"
    args = [str(trained_checkpoint), str(tmp_path / "same.npz"), str(synthetic_manifest)]
    args += ["--split", "val", "--out", str(out), "--cache-dir", str(cache_dir)]
    assert distill_fidelity.main(args) == 0
    report = json.loads((out / "fidelity.json").read_text())["val"]
    for task in ("genre", "mood"):
        assert report[task]["agreement"] == 1.0 and report[task]["kl"] < 1e-4
        assert report[task]["teacher_only"] == report[task]["student_only"] == 0
    trained = [r for r in report["features"].values() if r is not None]
    assert trained and min(trained) > 0.999
    assert "| val | genre |" in (out / "fidelity.md").read_text()

    rolled = _teacher_from(evaluator.tagger, rows, cache, roll=1)
    rolled.save(tmp_path / "rolled.npz")
    args[1] = str(tmp_path / "rolled.npz")
    assert distill_fidelity.main(args) == 0
    report = json.loads((out / "fidelity.json").read_text())["val"]
    assert report["genre"]["agreement"] == 0.0 and report["genre"]["kl"] > 1e-3

    partial = _teacher_from(evaluator.tagger, rows.iloc[1:], cache, roll=0)
    partial.save(tmp_path / "partial.npz")
    args[1] = str(tmp_path / "partial.npz")
    assert distill_fidelity.main(args) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]  # after the tqdm bars
    assert last.startswith("error: ") and str(rows["track_id"][0]) in last
