"""The evaluation's scores: classification, regression, tempo, ROC-AUC against signs, genre tags,
confusion matrices, and where the CNN falls below the handcrafted baseline (numpy, pandas; no
model).

Every metric that training also logs (accuracy, macro-F1, R², Pearson r, ROC-AUC, PR-AUC) is
computed by the same implementation, torchmetrics (``training/metrics.py`` streams its metric
classes; this module calls their functional forms, exact: no threshold binning, float64). The key's
MIREX score and tempo Acc1/Acc2 come from ``datamodules.analysis`` for both. Only Spearman ρ, which
training does not log, is scipy's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from datamodules.manifest import feature_provenance

if TYPE_CHECKING:
    import torch

#: The classification tasks the evaluator scores against labels by name (``model.tasks`` has
#: every head; these two have per-source labels, baselines and confusion matrices).
CLASS_TASKS = ("genre", "mood")
#: Feature predicted by the model → manifest column with a ±1 sign to rank it against.
SIGN_TARGETS = {"energy": ("arousal_sign", "arousal"), "valence": ("valence_sign", "valence")}


# -- the metrics shared with training (torchmetrics) ----------------------------------------------
def _class_indices(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(truth, predicted) as class indices into ``labels``; a name outside ``labels`` becomes one
    extra class (index ``len(labels)``) that is counted but never averaged over."""
    import torch

    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)

    def as_index(names: Sequence[str]) -> torch.Tensor:
        return torch.tensor([index.get(n, other) for n in names], dtype=torch.long)

    return as_index(truth), as_index(predicted), other + 1


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Fraction of ``predicted`` names equal to ``truth`` (same length, ≥ 1)."""
    from torchmetrics.functional.classification import multiclass_accuracy

    labels = sorted(set(truth) | set(predicted))
    target, preds, n = _class_indices(truth, predicted, labels)
    return float(multiclass_accuracy(preds, target, num_classes=n, average="micro"))


def macro_f1(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None
) -> float:
    """Mean per-class F1 over ``labels`` (default: every name on either side); a class never
    predicted scores 0. A prediction outside ``labels`` is a miss of its true class."""
    from torchmetrics.functional.classification import multiclass_f1_score

    labels = sorted(set(truth) | set(predicted)) if labels is None else list(labels)
    target, preds, n = _class_indices(truth, predicted, labels)
    per_class = multiclass_f1_score(preds, target, num_classes=n, average="none")
    return float(per_class[: len(labels)].mean())


def _float64(values: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.asarray(values, dtype=np.float64))


def _order(scores: np.ndarray) -> torch.Tensor:
    """``scores`` as their dense ranks scaled into [0, 1]: the same order and ties. ROC-AUC and
    PR-AUC depend on nothing else, and torchmetrics reads scores outside [0, 1] as logits, whose
    sigmoid saturates (ties) for large values such as BPM."""
    _, rank = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    return _float64(rank.reshape(-1) / max(int(rank.max(initial=0)), 1))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of ``scores`` against the booleans ``positive`` (both classes present)."""
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(_order(scores), _float64(positive).long()))


def average_precision(positive: np.ndarray, scores: np.ndarray) -> float:
    """PR-AUC (average precision) of ``scores`` against the booleans ``positive``."""
    from torchmetrics.functional.classification import binary_average_precision

    return float(binary_average_precision(_order(scores), _float64(positive).long()))


def pearson_r(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pearson correlation of two (n,) arrays (n ≥ 2, neither constant)."""
    from torchmetrics.functional import pearson_corrcoef

    return float(pearson_corrcoef(_float64(pred), _float64(truth)))


def r2(truth: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` for ``truth`` (1 - SS_res / SS_tot of truth)."""
    from torchmetrics.functional import r2_score

    return float(r2_score(_float64(pred), _float64(truth)))


# -- the evaluation's scores ----------------------------------------------------------------------
def classification_scores(
    truth: Sequence[str], probs: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of ``probs`` (n, len(names)) against ``truth`` (names).

    ``accuracy``/``macro_f1`` choose among the labels this subset has (e.g. GTZAN's 3 genres out
    of a model's 5: the closed-set question "which of these?"); ``accuracy_open`` chooses among
    every label of the model.
    """
    names = list(names)
    present = sorted(set(truth))
    columns = [names.index(n) for n in present]
    closed = [present[i] for i in probs[:, columns].argmax(1)]
    opened = [names[i] for i in probs.argmax(1)]
    return {
        "n": len(truth),
        "labels": present,
        "accuracy": accuracy(truth, closed),
        "macro_f1": macro_f1(truth, closed, labels=present),
        "accuracy_open": accuracy(truth, opened),
        "macro_f1_open": macro_f1(truth, opened, labels=present),
    }


def majority_scores(truth: Sequence[str], train_labels: Sequence[str]) -> dict[str, Any]:
    """Always answer the most common train label of this subset's label set; and uniform chance."""
    present = sorted(set(truth))
    counts = Counter(label for label in train_labels if label in present)
    majority = counts.most_common(1)[0][0] if counts else present[0]
    guess = [majority] * len(truth)
    return {
        "majority_label": majority,
        "accuracy": float(np.mean([t == majority for t in truth])),
        "macro_f1": macro_f1(truth, guess, labels=present),
        "chance_accuracy": 1.0 / len(present),
    }


def regression_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson r, Spearman ρ, R² and mean absolute error (None when undefined: fewer than 3
    values or constant targets); rows where either side is missing are left out."""
    from scipy.stats import spearmanr

    both = np.isfinite(truth) & np.isfinite(pred)
    truth, pred = truth[both], pred[both]
    if len(truth) < 3 or np.std(truth) == 0 or np.std(pred) == 0:
        return {"n": len(truth), "pearson_r": None, "spearman": None, "r2": None, "mae": None}
    return {
        "n": len(truth),
        "pearson_r": pearson_r(truth, pred),
        "spearman": float(spearmanr(truth, pred).statistic),
        "r2": r2(truth, pred),
        "mae": float(np.abs(truth - pred).mean()),
    }


def tempo_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Tempo Acc1 (within 4 %) and Acc2 (also of x2, x3, 1/2, 1/3), over rows with both."""
    from datamodules.analysis.tempo import tempo_accuracy

    both = np.isfinite(truth) & np.isfinite(pred) & (truth > 0)
    if not both.any():
        return {"n": 0, "acc1": None, "acc2": None}
    acc1, acc2 = tempo_accuracy(pred[both], truth[both])
    return {"n": int(both.sum()), "acc1": float(acc1.mean()), "acc2": float(acc2.mean())}


def feature_scores(truth: np.ndarray, pred: np.ndarray, name: str) -> dict[str, Any]:
    """:func:`regression_scores`, plus :func:`tempo_scores` for the tempo."""
    scores = regression_scores(truth, pred)
    if name == "tempo":
        scores.update({k: v for k, v in tempo_scores(truth, pred).items() if k != "n"})
    return scores


def auc(signs: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` against ``signs`` > 0; None with a single class."""
    positive = signs > 0
    if positive.all() or not positive.any():
        return None
    return roc_auc(positive, scores)


def genre_tag_scores(truth: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """ROC-AUC and PR-AUC (average precision) of one genre tag's ``probs`` against 0/1 ``truth``
    (NaN rows left out), with the counts; the scores are None when the rows have no positive or
    no negative. ``prevalence`` (positives / n) is the PR-AUC of a random ranking."""
    has = np.isfinite(truth) & np.isfinite(probs)
    positive = truth[has] >= 0.5
    n, positives = int(has.sum()), int(positive.sum())
    result: dict[str, Any] = {"n": n, "positives": positives, "roc_auc": None, "pr_auc": None}
    result["prevalence"] = positives / n if n else None
    if 0 < positives < n:
        result["roc_auc"] = roc_auc(positive, probs[has])
        result["pr_auc"] = average_precision(positive, probs[has])
    return result


def sign_targets(df: pd.DataFrame, feature: str) -> pd.Series:
    """The ±1 sign a feature is ranked against: a sign column if present, else a two-valued target.

    4Q's arousal/valence signs arrive either as their own column (``arousal_sign``/``arousal``) or
    already mapped to weak 0/1 ``energy``/``valence`` targets by the importer; both mean the same.
    Rows whose value a teacher filled in are not signs and are left out.
    """
    for column in SIGN_TARGETS[feature]:
        if column in df:
            values = pd.to_numeric(df[column], errors="coerce")
            if values.dropna().isin([-1.0, 1.0]).all():
                return np.sign(values)
    if feature in df:
        values = pd.to_numeric(df[feature], errors="coerce")
        # Only labels, never a teacher's continuous values filled in beside them.
        teacher = feature_provenance(df, feature).fillna("").str.startswith("teacher:")
        values = values.where(~teacher.to_numpy(bool))
        distinct = values.dropna().unique()
        if len(distinct) == 2:
            return pd.Series(
                np.where(values.isna(), np.nan, np.where(values > distinct.mean(), 1.0, -1.0)),
                index=df.index,
            )
    return pd.Series(np.nan, index=df.index)


def confusion(truth: Sequence[str], probs: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix of the open-set prediction: rows = true labels present, cols = all names."""
    present = sorted(set(truth))
    predicted = [names[i] for i in probs.argmax(1)]
    matrix = [
        [sum(1 for t, p in zip(truth, predicted, strict=True) if t == a and p == b) for b in names]
        for a in present
    ]
    return {"true": present, "predicted": list(names), "matrix": matrix}


def below_baseline(report: dict[str, Any]) -> list[str]:
    """Headline metrics where the CNN does not beat the handcrafted baseline."""
    found = []
    for source, entry in report["sources"].items():
        for task in CLASS_TASKS:
            scores = entry.get(task, {})
            if "cnn" in scores and "baseline" in scores:
                for metric in ("accuracy", "macro_f1"):
                    if scores["cnn"][metric] <= scores["baseline"][metric]:
                        found.append(
                            f"{source} {task} {metric}: CNN {scores['cnn'][metric]:.3f} <= "
                            f"baseline {scores['baseline'][metric]:.3f}"
                        )
        for name, scores in entry.get("features", {}).items():
            a = scores.get("auc_vs_sign", {})
            if a.get("baseline") is not None and a["cnn"] <= a["baseline"]:
                found.append(
                    f"{source} {name} ROC-AUC: CNN {a['cnn']:.3f} <= baseline {a['baseline']:.3f}"
                )
    return found
