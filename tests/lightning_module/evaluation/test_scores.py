"""The evaluation's metrics (torchmetrics, the implementation training logs with) give the numbers
scikit-learn gives, up to float32 noise, on the cases the evaluation meets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    r2_score,
    roc_auc_score,
)

from lightning_module.evaluation import scores

NAMES = ["blues", "jazz", "pop", "rock", "folk"]


@pytest.mark.parametrize("seed", range(5))
def test_shared_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = list(rng.choice(NAMES[:3], 40))
    open_set = list(rng.choice(NAMES, 40))  # predictions outside the labels present
    present = sorted(set(truth))
    assert scores.accuracy(truth, open_set) == pytest.approx(accuracy_score(truth, open_set))
    assert scores.macro_f1(truth, open_set, labels=present) == pytest.approx(
        f1_score(truth, open_set, labels=present, average="macro", zero_division=0), abs=1e-6
    )
    assert scores.macro_f1(truth, open_set) == pytest.approx(
        f1_score(truth, open_set, average="macro", zero_division=0), abs=1e-6
    )
    positive = rng.random(40) < 0.4
    positive[:2] = (True, False)
    bpm = np.round(rng.normal(120, 30, 40))  # far outside [0, 1], with ties
    assert scores.roc_auc(positive, bpm) == pytest.approx(roc_auc_score(positive, bpm), abs=1e-6)
    assert scores.average_precision(positive, bpm) == pytest.approx(
        average_precision_score(positive, bpm), abs=1e-6
    )
    pred = bpm + rng.normal(0, 20, 40)
    assert scores.pearson_r(bpm, pred) == pytest.approx(np.corrcoef(bpm, pred)[0, 1], abs=1e-12)
    assert scores.r2(bpm, pred) == pytest.approx(r2_score(bpm, pred), abs=1e-12)


def test_majority_guess_scores_zero_f1_for_the_classes_it_never_names() -> None:
    truth = ["jazz", "jazz", "rock", "pop"]
    result = scores.majority_scores(truth, ["jazz", "jazz", "rock"])
    assert result["majority_label"] == "jazz"
    assert result["macro_f1"] == pytest.approx(f1_score(truth, ["jazz"] * 4, average="macro"))
