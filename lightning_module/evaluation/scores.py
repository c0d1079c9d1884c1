"""The evaluation's scores: classification, regression, tempo, ROC-AUC against signs, genre tags,
confusion matrices, and where the CNN falls below the handcrafted baseline (numpy, pandas,
scikit-learn; no model)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from datamodules.manifest import feature_provenance

#: The classification tasks the evaluator scores against labels by name (``model.tasks`` has
#: every head; these two have per-source labels, baselines and confusion matrices).
CLASS_TASKS = ("genre", "mood")
#: Feature predicted by the model → manifest column with a ±1 sign to rank it against.
SIGN_TARGETS = {"energy": ("arousal_sign", "arousal"), "valence": ("valence_sign", "valence")}


def classification_scores(
    truth: Sequence[str], probs: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy and macro-F1 of ``probs`` (n, len(names)) against ``truth`` (names).

    ``accuracy``/``macro_f1`` choose among the labels this subset has (e.g. GTZAN's 3 genres out
    of a model's 5: the closed-set question "which of these?"); ``accuracy_open`` chooses among
    every label of the model.
    """
    from sklearn.metrics import accuracy_score, f1_score

    names = list(names)
    present = sorted(set(truth))
    columns = [names.index(n) for n in present]
    closed = [present[i] for i in probs[:, columns].argmax(1)]
    opened = [names[i] for i in probs.argmax(1)]
    return {
        "n": len(truth),
        "labels": present,
        "accuracy": float(accuracy_score(truth, closed)),
        "macro_f1": float(f1_score(truth, closed, labels=present, average="macro")),
        "accuracy_open": float(accuracy_score(truth, opened)),
        "macro_f1_open": float(f1_score(truth, opened, labels=present, average="macro")),
    }


def majority_scores(truth: Sequence[str], train_labels: Sequence[str]) -> dict[str, Any]:
    """Always answer the most common train label of this subset's label set; and uniform chance."""
    from sklearn.metrics import f1_score

    present = sorted(set(truth))
    counts = Counter(label for label in train_labels if label in present)
    majority = counts.most_common(1)[0][0] if counts else present[0]
    guess = [majority] * len(truth)
    return {
        "majority_label": majority,
        "accuracy": float(np.mean([t == majority for t in truth])),
        "macro_f1": float(f1_score(truth, guess, labels=present, average="macro")),
        "chance_accuracy": 1.0 / len(present),
    }


def regression_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pearson r, Spearman ρ, R² and mean absolute error (None when undefined: fewer than 3
    values or constant targets); rows where either side is missing are left out."""
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    both = np.isfinite(truth) & np.isfinite(pred)
    truth, pred = truth[both], pred[both]
    if len(truth) < 3 or np.std(truth) == 0 or np.std(pred) == 0:
        return {"n": len(truth), "pearson_r": None, "spearman": None, "r2": None, "mae": None}
    return {
        "n": len(truth),
        "pearson_r": float(np.corrcoef(truth, pred)[0, 1]),
        "spearman": float(spearmanr(truth, pred).statistic),
        "r2": float(r2_score(truth, pred)),
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
    from sklearn.metrics import roc_auc_score

    positive = signs > 0
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, scores))


def genre_tag_scores(truth: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """ROC-AUC and PR-AUC (average precision) of one genre tag's ``probs`` against 0/1 ``truth``
    (NaN rows left out), with the counts; the scores are None when the rows have no positive or
    no negative. ``prevalence`` (positives / n) is the PR-AUC of a random ranking."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    has = np.isfinite(truth) & np.isfinite(probs)
    positive = truth[has] >= 0.5
    n, positives = int(has.sum()), int(positive.sum())
    result: dict[str, Any] = {"n": n, "positives": positives, "roc_auc": None, "pr_auc": None}
    result["prevalence"] = positives / n if n else None
    if 0 < positives < n:
        result["roc_auc"] = float(roc_auc_score(positive, probs[has]))
        result["pr_auc"] = float(average_precision_score(positive, probs[has]))
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
