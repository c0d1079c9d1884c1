"""Outputs against listeners' emotion ratings (Emotify's GEMS): human ground truth beyond labels.

Emotify gives, per clip, the share of its listeners who reported each of nine GEMS emotions
(``gems_power``, ``gems_joyful_activation``, ``gems_sadness``, ``gems_calmness``, ...; manifest
columns from ``configs/sources/emotify.yaml``). Each pair below ranks one output of the model
against one fixed combination of those shares, declared before any model was scored (GEMS groups
power and joyful activation as *vitality*, calmness and tenderness as *sublimity*): Spearman's
rank correlation over the clips that have ratings, with their count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PREFIX = "gems_"


@dataclass(frozen=True)
class RatingPair:
    """Output ``name`` of ``kind`` (``feature`` or a class task such as ``mood``) against the
    mean share of ``plus`` emotions minus the mean share of ``minus`` ones."""

    kind: str
    name: str
    plus: tuple[str, ...]
    minus: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        rating = " + ".join(self.plus) + "".join(f" - {m}" for m in self.minus)
        return f"{self.kind} {self.name} vs {rating}"

    def target(self, rows: pd.DataFrame) -> np.ndarray:
        def mean(names: tuple[str, ...]) -> np.ndarray:
            values = rows[[PREFIX + n for n in names]].apply(pd.to_numeric, errors="coerce")
            return values.to_numpy(np.float64).mean(axis=1)

        return mean(self.plus) - (mean(self.minus) if self.minus else 0.0)


RATING_PAIRS: tuple[RatingPair, ...] = (
    RatingPair("feature", "energy", ("power", "joyful_activation"), ("calmness", "tenderness")),
    RatingPair("feature", "valence", ("joyful_activation",), ("sadness",)),
    RatingPair("mood", "happy", ("joyful_activation",)),
    RatingPair("mood", "sad", ("sadness",)),
    RatingPair("mood", "calm", ("calmness",)),
    RatingPair("mood", "energetic", ("power",)),
)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two (n,) arrays (torchmetrics, as every other score)."""
    import torch
    from torchmetrics.functional import spearman_corrcoef

    return float(
        spearman_corrcoef(
            torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64))
        )
    )


def rating_scores(
    rows: pd.DataFrame,
    mask: np.ndarray,
    outputs: dict[str, tuple[list[str], np.ndarray]],
) -> dict[str, Any]:
    """Per pair whose output and ratings exist: ``{"n", "spearman"}`` over the clips of ``mask``
    with every rating of the pair.

    Args:
        rows: the evaluated clips (manifest rows, in prediction order).
        mask: (n,) which of them to score (one source).
        outputs: kind → (output names, (n, names) values): ``feature`` in natural units, class
            tasks as probabilities.
    """
    result: dict[str, Any] = {}
    for pair in RATING_PAIRS:
        columns = [PREFIX + n for n in (*pair.plus, *pair.minus)]
        if pair.kind not in outputs or not set(columns) <= set(rows.columns):
            continue
        names, values = outputs[pair.kind]
        if pair.name not in names:
            continue
        target = pair.target(rows)
        predicted = values[:, names.index(pair.name)]
        has = mask & np.isfinite(target) & np.isfinite(predicted)
        if has.sum() >= 3 and np.std(target[has]) > 0 and np.std(predicted[has]) > 0:
            result[pair.label] = {
                "n": int(has.sum()),
                "spearman": spearman(predicted[has], target[has]),
            }
    return result


def rating_lines(scores: dict[str, Any] | None) -> list[str]:
    """Markdown table of :func:`rating_scores` (nothing without scores)."""
    if not scores:
        return []
    lines = ["", "| output vs listeners' GEMS shares | clips | Spearman |", "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['spearman']:.3f} |" for k, v in scores.items()]
    return lines
