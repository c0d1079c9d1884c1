"""The logistic-regression probe both baselines use: the handcrafted MFCC baseline of
``evaluator.py`` and the frozen-musicnn probe of ``teacher_probe.py`` (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lightning_module.evaluation.scores import macro_f1

#: Regularisation strengths tried, chosen on the val split (never on test).
CS = (0.01, 0.1, 1.0, 10.0)


def fit_logistic(
    x_train: np.ndarray,
    y_train: Sequence,
    x_val: np.ndarray | None,
    y_val: Sequence | None,
    fallback_c: float,
) -> tuple[Any, float]:
    """Standardise + logistic regression on (n, d) descriptors; C is the one of :data:`CS` with
    the best val macro-F1, or ``fallback_c`` without val data (fewer than two val labels).
    Returns the fitted pipeline and its C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    best_c, best_score = fallback_c, -1.0
    if x_val is not None and y_val is not None and len(set(y_val)) > 1:
        for c in CS:
            score = macro_f1(list(y_val), list(model(c).fit(x_train, y_train).predict(x_val)))
            if score > best_score:
                best_c, best_score = c, score
    return model(best_c).fit(x_train, y_train), best_c
