"""Standardised linear models folded into one ``nn.Linear``-shaped map each: the teacher's heads.

Each fit standardises its inputs, fits a scikit-learn model (logistic regression for classes and
tags, ridge for features) and folds the scaler into the weights, so a head is ``x @ W.T + b`` on
the raw embedding (:class:`LinearHead`). Also the clip-level outputs and val scores the choice in
:mod:`.probe` compares.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class LinearHead:
    """``logits = x @ weight.T + bias`` on the raw (unstandardised) embedding.

    Shapes: weight (outputs, d), bias (outputs,)."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    scale = x.std(0)
    return mean, np.where(scale > 1e-6, scale, 1.0)


def _fold(coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray):
    """Scaler + linear model on standardised x → one linear map on raw x."""
    weight = coef / scale
    return LinearHead(weight.astype(np.float32), (intercept - weight @ mean).astype(np.float32))


def _logistic(z: np.ndarray, y: np.ndarray, c: float):
    """scikit-learn's logistic regression at inverse strength ``c`` fitted on standardised ``z``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the grid's weakest C
        return model.fit(z, y)


def fit_classes(x: np.ndarray, y: np.ndarray, n_classes: int, c: float) -> LinearHead:
    """Multinomial logistic regression; (n_classes, d) even when some class is absent."""
    mean, scale = _standardise(x)
    model = _logistic((x - mean) / scale, y, c)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, -30.0)  # a class never seen in training: probability ~0
    if len(model.classes_) == 2:  # sklearn keeps one row for two classes: logit of the second
        coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        intercept[model.classes_[0]] = 0.0
    else:
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
    return _fold(coef, intercept, mean, scale)


def _per_column(
    x: np.ndarray, y: np.ndarray, fit_column: Callable[[np.ndarray, np.ndarray], tuple]
) -> LinearHead:
    """One model per column of ``y`` on standardised ``x``, fitted on that column's labelled
    (finite) rows by ``fit_column(z, target) -> (coef (d,), intercept)``."""
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    coef = np.zeros((y.shape[1], x.shape[1]))
    intercept = np.zeros(y.shape[1])
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        coef[j], intercept[j] = fit_column(z[rows], y[rows, j])
    return _fold(coef, intercept, mean, scale)


def fit_binary(x: np.ndarray, y: np.ndarray, c: float) -> LinearHead:
    """One logistic regression per column of ``y`` (0/1, NaN: not labelled for that column)."""

    def fit_column(z: np.ndarray, column: np.ndarray) -> tuple:
        target = column > 0.5
        if target.all() or not target.any():  # one class only: its base rate
            rate = np.clip(target.mean() if target.size else 0.5, 1e-3, 1 - 1e-3)
            return 0.0, np.log(rate / (1 - rate))
        model = _logistic(z, target, c)
        return model.coef_[0], model.intercept_[0]

    return _per_column(x, y, fit_column)


def fit_regression(x: np.ndarray, y: np.ndarray, alpha: float) -> LinearHead:
    """One ridge regression per column of ``y`` (z-scores, NaN where a row has no value)."""
    from sklearn.linear_model import Ridge

    def fit_column(z: np.ndarray, column: np.ndarray) -> tuple:
        if len(column) < 2:
            return 0.0, 0.0
        model = Ridge(alpha=alpha).fit(z, column)
        return model.coef_, model.intercept_

    return _per_column(x, y, fit_column)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def clip_outputs(head: LinearHead, kind: str, windows: Sequence[np.ndarray]) -> np.ndarray:
    """Per clip, the mean over its windows of the head's probabilities (``classes``: softmax,
    ``binary``: sigmoid) or values (``regression``)."""
    activation = {"classes": softmax, "binary": sigmoid, "regression": lambda v: v}[kind]
    return np.stack([activation(head(w)).mean(0) for w in windows])


def score(kind: str, y: np.ndarray, out: np.ndarray) -> float:
    """Val score of one head: accuracy (classes), mean ROC-AUC over defined tags (binary), mean
    Pearson r over defined features (regression)."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    if kind == "classes":
        return float(accuracy_score(y, out.argmax(1)))
    values = []
    for j in range(y.shape[1]):
        rows = np.isfinite(y[:, j])
        truth = y[rows, j]
        if kind == "binary":
            if len(set((truth > 0.5).tolist())) == 2:
                values.append(roc_auc_score(truth > 0.5, out[rows, j]))
        elif rows.sum() > 2 and truth.std() > 0 and out[rows, j].std() > 0:
            values.append(np.corrcoef(truth, out[rows, j])[0, 1])
    return float(np.mean(values)) if values else float("nan")


METRICS = {"classes": "accuracy", "binary": "mean ROC-AUC", "regression": "mean r"}
