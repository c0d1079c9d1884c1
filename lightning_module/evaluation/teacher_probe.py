"""The "what a user would pick instead" line: frozen musicnn descriptors + logistic regression.

Each clip is one (1053,) descriptor of the frozen pretrained musicnn
(:mod:`lightning_module.teacher.clip_descriptor`: taggram mean and std, mean penultimate layer,
mean max-pooled features over its 3 s windows). A standardised logistic regression per task is fit
on the train split, its C chosen on val macro-F1, and scored on test, per source: genre and mood
accuracy / macro-F1 among the labels that source has, and ROC-AUC of the energy / valence sign
(4Q's weak arousal / valence targets).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lightning_module.evaluation.logistic import CS, fit_logistic
from lightning_module.evaluation.scores import accuracy, macro_f1, roc_auc

SIGN_FEATURES = ("energy", "valence")


def probe(rows: pd.DataFrame, x: np.ndarray) -> list[dict[str, Any]]:
    """Fit on train, choose C on val, score test, per task and source (see the module doc).

    Args:
        rows: manifest rows aligned with ``x`` (``split``, ``source``, ``genre``, ``mood``, ...).
        x: (n, d) descriptors.

    Returns:
        One dict per (task, source): ``task``, ``source``, ``n``, ``C`` and ``accuracy`` +
        ``macro_f1`` (classification) or ``auc`` (energy / valence sign).
    """
    rows = rows.reset_index(drop=True)
    split = rows["split"].to_numpy()
    results: list[dict[str, Any]] = []
    targets: dict[str, pd.Series] = {t: rows[t] for t in ("genre", "mood") if t in rows}
    for feature in SIGN_FEATURES:
        if feature in rows:
            values = pd.to_numeric(rows[feature], errors="coerce")
            # 4Q's weak targets are 0/1 (sign of arousal / valence); other values are no signs.
            signs = values.where(values.isin([0.0, 1.0]))
            targets[feature] = signs.map(lambda v: pd.NA if pd.isna(v) else ("high", "low")[v < 1])
    for task, target in targets.items():
        labelled = target.notna().to_numpy()
        fit = labelled & (split == "train")
        val = labelled & (split == "val")
        if fit.sum() < 2 or len(set(target[fit])) < 2:
            continue
        y = target.astype(str).to_numpy()
        model, c = fit_logistic(x[fit], y[fit], x[val], y[val], fallback_c=CS[0])
        classes = list(model.classes_)
        for source in sorted(rows.loc[labelled & (split == "test"), "source"].dropna().unique()):
            test = labelled & (split == "test") & (rows["source"] == source).to_numpy()
            probs = model.predict_proba(x[test])
            truth = y[test]
            row: dict[str, Any] = {"task": task, "source": source, "n": int(test.sum()), "C": c}
            if task in SIGN_FEATURES:
                if len(set(truth)) > 1:
                    row["auc"] = roc_auc(truth == "high", probs[:, classes.index("high")])
            else:
                present = sorted(set(truth))
                columns = [classes.index(n) for n in present if n in classes]
                guess = [classes[columns[i]] for i in probs[:, columns].argmax(1)]
                row["accuracy"] = accuracy(list(truth), guess)
                row["macro_f1"] = macro_f1(list(truth), guess, labels=present)
            results.append(row)
    return results


def format_results(results: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`probe`'s results."""
    lines = ["| task | source | test clips | accuracy | macro-F1 | AUC | C |", "|---" * 7 + "|"]
    for r in results:
        cells = [f"{r[k]:.3f}" if k in r else "" for k in ("accuracy", "macro_f1", "auc")]
        lines.append(
            f"| {r['task']} | {r['source']} | {r['n']} | " + " | ".join(cells) + f" | {r['C']:g} |"
        )
    return "\n".join(lines)
