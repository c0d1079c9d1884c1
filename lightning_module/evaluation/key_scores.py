"""Key evaluation against annotated keys and against the DSP key teacher (for ``evaluate.py``).

Scores: accuracy (exact key) and the MIREX weighted score with its split into correct, fifth,
relative, parallel and other (``datamodules.analysis.key.mirex_scores``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from datamodules.analysis.key import mirex_scores, parse_key
from lightning_module.model.key import KeyBranch


def key_truth(rows: pd.DataFrame) -> np.ndarray:
    """(n,) annotated key index per row from the ``key``/``mode`` columns; -1 where none."""
    if "key" not in rows:
        return np.full(len(rows), -1)
    modes = rows["mode"] if "mode" in rows else pd.Series([None] * len(rows), index=rows.index)
    out = []
    for key, mode in zip(rows["key"], modes, strict=True):
        if not isinstance(key, str) or not key.strip():
            out.append(-1)
            continue
        out.append(parse_key(f"{key} {mode}" if isinstance(mode, str) and mode else key))
    return np.asarray(out, dtype=int)


class KeyTeacher:
    """The DSP key estimator (chroma + Krumhansl-Kessler profiles, nothing learned) on a clip."""

    def __init__(self, sample_rate: int) -> None:
        self.branch = KeyBranch(sample_rate, hidden=0).eval()

    @torch.no_grad()
    def __call__(self, wave: torch.Tensor) -> int:
        return int(self.branch(wave.float()[None]).argmax())


def key_report(
    truth: np.ndarray, predicted: np.ndarray, teacher: np.ndarray | None, mask: np.ndarray
) -> dict[str, Any] | None:
    """The student against annotated keys, the teacher against them, the student against the
    teacher (all clips of ``mask``); None when no clip there has an annotated key or the model
    has no key head (``predicted`` -1)."""
    entry: dict[str, Any] = {}
    labelled = mask & (truth >= 0) & (predicted >= 0)
    if labelled.any():
        entry["cnn"] = mirex_scores(predicted[labelled], truth[labelled])
        if teacher is not None:
            entry["teacher_vs_truth"] = mirex_scores(teacher[labelled], truth[labelled])
    if teacher is not None:
        both = mask & (predicted >= 0) & (teacher >= 0)
        if both.any():
            entry["cnn_vs_teacher"] = mirex_scores(predicted[both], teacher[both])
    return entry or None


def key_lines(entry: dict[str, Any] | None) -> list[str]:
    """Markdown table rows of :func:`key_report`."""
    if not entry:
        return []
    lines = []
    for name, what in (
        ("cnn", "CNN vs annotated keys"),
        ("teacher_vs_truth", "DSP key teacher vs annotated keys"),
        ("cnn_vs_teacher", "CNN vs the DSP key teacher"),
    ):
        s = entry.get(name)
        if s and s.get("n"):
            split = ", ".join(f"{k} {s[k]:.2f}" for k in ("fifth", "relative", "parallel", "other"))
            lines.append(
                f"| key: {what} (n={s['n']}): accuracy / MIREX ({split}) | "
                f"{s['correct']:.3f} / {s['weighted']:.3f} | | | |"
            )
    return lines
