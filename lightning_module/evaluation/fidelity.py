"""Where distillation loses accuracy: a student against its teacher, clip by clip, per split.

The teacher's view of a clip is the mean of its window probabilities in ``teacher_outputs.npz``
(what the student was trained to imitate); the student's is what ``predict_clip`` returns (windows
averaged, :func:`~lightning_module.evaluation.evaluator.tag_rows`). Per split and class head:

- ``agreement``: share of clips where both pick the same class (every clip, labelled or not);
- ``kl``: mean KL(teacher ‖ student) in nats over those clips;
- on clips with a label the model knows: each model's accuracy, and the four-way split
  ``both`` / ``teacher_only`` / ``student_only`` / ``neither`` right, so the gap
  (teacher accuracy - student accuracy) = (``teacher_only`` - ``student_only``) / n;
- per feature head output: Pearson r between student and teacher (natural units).

Read on the split the student trained on and on one it did not: imitation that is good on train
and poor on val is a generalisation gap (more audio through the teacher, augmentation); poor on
both is capacity or optimisation (a larger student, longer training).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from datamodules.loading.cache import AudioCache
from datamodules.loading.teacher_targets import TeacherOutputs
from lightning_module.evaluation.evaluator import Evaluator, tag_rows
from lightning_module.evaluation.scores import CLASS_TASKS, pearson_r
from lightning_module.inference.tagger import Tagger

#: Probabilities are clipped here before logarithms (a zero would make KL infinite).
_EPS = 1e-7


def teacher_clip_means(
    outputs: TeacherOutputs, track_ids: list[str], head: str, names: list[str]
) -> np.ndarray:
    """(clips, len(names)) mean window output of ``head``, columns in ``names`` order.

    Raises:
        ValueError: a clip the teacher never saw, or a name the teacher's head lacks.
    """
    teacher_names = outputs.names.get(head, [])
    missing = sorted(set(names) - set(teacher_names))
    if missing:
        raise ValueError(f"the teacher's {head} head lacks {', '.join(missing)}")
    columns = [teacher_names.index(n) for n in names]
    rows = []
    for track_id in track_ids:
        span = outputs.windows(track_id)
        if span is None:
            raise ValueError(f"{track_id}: no teacher outputs for this clip")
        rows.append(outputs.heads[head][span][:, columns].mean(0))
    return np.asarray(rows, dtype=np.float64).reshape(len(track_ids), len(names))


def class_fidelity(
    teacher: np.ndarray, student: np.ndarray, names: list[str], truth: pd.Series
) -> dict[str, Any]:
    """Agreement, KL and the right/wrong split of one class head.

    Args:
        teacher, student: (clips, classes) probabilities, columns in ``names`` order.
        truth: (clips,) ground-truth label or NaN.
    """
    t_pick, s_pick = teacher.argmax(1), student.argmax(1)
    t = np.clip(teacher, _EPS, 1.0)
    s = np.clip(student, _EPS, 1.0)
    t, s = t / t.sum(1, keepdims=True), s / s.sum(1, keepdims=True)
    result: dict[str, Any] = {
        "n": len(teacher),
        "agreement": float((t_pick == s_pick).mean()) if len(teacher) else None,
        "kl": float((t * np.log(t / s)).sum(1).mean()) if len(teacher) else None,
    }
    label = truth.astype(object).where(truth.notna(), None).to_numpy()
    index = {n: i for i, n in enumerate(names)}
    known = np.array([v is not None and str(v) in index for v in label], dtype=bool)
    result["n_labelled"] = int(known.sum())
    if known.any():
        y = np.array([index[str(v)] for v in label[known]])
        t_right, s_right = t_pick[known] == y, s_pick[known] == y
        result |= {
            "teacher_acc": float(t_right.mean()),
            "student_acc": float(s_right.mean()),
            "both": int((t_right & s_right).sum()),
            "teacher_only": int((t_right & ~s_right).sum()),
            "student_only": int((~t_right & s_right).sum()),
            "neither": int((~t_right & ~s_right).sum()),
        }
    return result


def _r(teacher: np.ndarray, student: np.ndarray) -> float | None:
    """Pearson r over the clips where both are finite; None when it is undefined (a constant, or
    a feature the student was not trained on and so does not output)."""
    ok = np.isfinite(teacher) & np.isfinite(student)
    if ok.sum() < 2 or teacher[ok].std() == 0 or student[ok].std() == 0:
        return None
    return pearson_r(teacher[ok], student[ok])


def fidelity(
    tagger: Tagger, rows: pd.DataFrame, cache: AudioCache, outputs: TeacherOutputs
) -> dict[str, Any]:
    """Student (``tagger``) against teacher (``outputs``) on ``rows`` (decoded in ``cache``).

    Returns ``{"n": clips, "genre": {...}, "mood": {...}, "features": {name: r}}`` with only the
    heads both models have (see the module docstring for each value).
    """
    spec = tagger.spec
    preds = tag_rows(tagger, rows, cache, None)
    track_ids = [str(t) for t in preds.rows["track_id"]]
    report: dict[str, Any] = {"n": len(track_ids)}
    for task in CLASS_TASKS:
        names = list(spec.names(task))
        if task not in preds.probs or task not in outputs.heads or not names:
            continue
        teacher = teacher_clip_means(outputs, track_ids, task, names)
        report[task] = class_fidelity(teacher, preds.probs[task], names, preds.rows[task])
    shared = [n for n in spec.feature_names if n in outputs.names.get("features", [])]
    if shared and preds.features is not None:
        teacher = teacher_clip_means(outputs, track_ids, "features", shared)
        student = preds.features[:, [list(spec.feature_names).index(n) for n in shared]]
        report["features"] = {n: _r(teacher[:, i], student[:, i]) for i, n in enumerate(shared)}
    return report


def run_fidelity(
    checkpoint: str | os.PathLike,
    teacher_outputs: str | os.PathLike,
    manifest: str | os.PathLike,
    splits: list[str],
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """:func:`fidelity` of a student checkpoint on each of ``splits`` of ``manifest``, with the
    evaluation's audio cache and tagger (:class:`~.evaluator.Evaluator`); clips that do not
    decode are left out, as in an evaluation.

    Raises:
        ValueError: an empty split, or a clip the teacher never saw.
    """
    evaluator = Evaluator(
        checkpoint, manifest, split=splits[0], cache_dir=cache_dir, baseline=False, device=device
    )
    outputs = TeacherOutputs.load(teacher_outputs)
    df = evaluator.manifest
    by_split = {}
    for split in splits:
        rows = df[df["split"] == split]
        if rows.empty:
            raise ValueError(f"{manifest}: no rows in split {split!r}")
        cache = evaluator.cache_for(rows)
        rows = rows[rows["track_id"].isin(cache.offsets.keys())].reset_index(drop=True)
        by_split[split] = fidelity(evaluator.tagger, rows, cache, outputs)
    return by_split


def fidelity_markdown(by_split: dict[str, dict[str, Any]]) -> str:
    """One table of class heads and one of features, a row per split (and head)."""

    def f(value: Any) -> str:
        return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        "| split | head | clips | agreement | KL (nats) | labelled | teacher acc | student acc "
        "| both right | teacher only | student only | neither |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for split, report in by_split.items():
        for task in CLASS_TASKS:
            r = report.get(task)
            if r is None:
                continue
            keys = ("agreement", "kl", "n_labelled", "teacher_acc", "student_acc", "both")
            keys += ("teacher_only", "student_only", "neither")
            cells = [split, task, str(report["n"]), *(f(r.get(k)) for k in keys)]
            lines.append("| " + " | ".join(cells) + " |")
    features = {s: r["features"] for s, r in by_split.items() if r.get("features")}
    if features:
        names = list(next(iter(features.values())))
        lines += ["", "| split | " + " | ".join(names) + " | mean r |"]
        lines.append("|---" * (len(names) + 2) + "|")
        for split, rs in features.items():
            values = [rs[n] for n in names]
            known = [v for v in values if v is not None]
            mean = float(np.mean(known)) if known else None
            lines.append(f"| {split} | " + " | ".join(f(v) for v in values) + f" | {f(mean)} |")
    return "\n".join(lines) + "\n"
