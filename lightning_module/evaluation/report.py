"""The evaluation report: ``report.json``, ``report.md`` and one confusion-matrix PNG per source
and classification task (what ``scripts/evaluate.py`` writes from ``Evaluator.run``'s report)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lightning_module.evaluation.headline import headline_lines
from lightning_module.evaluation.key_scores import key_lines
from lightning_module.evaluation.ratings import rating_lines
from lightning_module.evaluation.scores import CLASS_TASKS
from lightning_module.plots import confusion_figure, save_png


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# -- writing ---------------------------------------------------------------------------------------
def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.json, report.md and one confusion PNG per (source, task) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for source, entry in report["sources"].items():
        for task in CLASS_TASKS:
            if "confusion" in entry.get(task, {}):
                path = out / f"confusion_{_slug(source)}_{task}.png"
                matrix = entry[task]["confusion"]
                save_png(
                    confusion_figure(
                        np.asarray(matrix["matrix"], dtype=int),
                        matrix["true"],
                        f"{source}: {task}",
                        predicted_labels=matrix["predicted"],
                        dpi=100,
                    ),
                    path,
                )
                entry[task]["confusion"]["png"] = path.name
                pngs[f"{source}/{task}"] = path
    json_path = out / "report.json"
    json_path.write_text(json.dumps(json_safe(report), indent=2))
    md_path = out / "report.md"
    md_path.write_text(format_markdown(report))
    return {"json": json_path, "markdown": md_path, **pngs}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _f(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _genre_tag_lines(scores: dict[str, Any] | None) -> list[str]:
    """The genre-tag means (rows of the metric table) and a per-tag table after it."""
    if not scores:
        return []
    k, n = scores["n_defined"], scores["n"]
    lines = [
        f"| genre tags: mean ROC-AUC ({k} tags, n={n}) | {_f(scores['mean_roc_auc'])} | | | "
        "0.500 |",
        f"| genre tags: mean PR-AUC | {_f(scores['mean_pr_auc'])} | | | "
        f"{_f(scores['mean_prevalence'])} |",
        "",
        "| genre tag | positives / clips | ROC-AUC | PR-AUC | prevalence |",
        "|---|---|---|---|---|",
    ]
    for name, tag in sorted(scores["tags"].items(), key=lambda kv: -kv[1]["positives"]):
        lines.append(
            f"| {name} | {tag['positives']} / {tag['n']} | {_f(tag['roc_auc'])} | "
            f"{_f(tag['pr_auc'])} | {_f(tag['prevalence'])} |"
        )
    return lines


def format_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: one table per source, then counts and settings."""
    lines = [
        f"# Evaluation: {Path(report['checkpoint']).name} on {report['manifest']} "
        f"(split: {report['split']})",
        "",
        f"Command: `{report['command']}`" if report["command"] else "",
        "",
        "Genre/mood `accuracy` and `macro-F1` choose among the labels each source has (GTZAN: 3 "
        "genres); `open` chooses among every label the model knows. Baseline: mean+std of 20 "
        "MFCCs and 64 log-mel bands per clip → logistic regression on the train split (C chosen "
        "on val). ROC-AUC ranks the predicted feature against the ±1 arousal/valence sign. Genre "
        "tags (multi-label AllMusic genres): per-tag ROC-AUC and PR-AUC on the clips that have "
        "genre tags; a random ranking scores 0.5 and the prevalence.",
        "",
        *headline_lines(report),
    ]
    for source, entry in report["sources"].items():
        lines += [f"## {source} ({entry['n']} clips)", ""]
        lines += ["| metric | CNN | handcrafted LR | majority | chance |", "|---|---|---|---|---|"]
        for task in CLASS_TASKS:
            scores = entry.get(task)
            if not scores or "cnn" not in scores:
                continue
            cnn, base, major = scores["cnn"], scores.get("baseline", {}), scores["majority"]
            n = len(cnn["labels"])
            lines.append(
                f"| {task} accuracy ({n} labels, n={cnn['n']}) | {_f(cnn['accuracy'])} | "
                f"{_f(base.get('accuracy'))} | {_f(major['accuracy'])} | "
                f"{_f(major['chance_accuracy'])} |"
            )
            lines.append(
                f"| {task} macro-F1 | {_f(cnn['macro_f1'])} | {_f(base.get('macro_f1'))} | "
                f"{_f(major['macro_f1'])} | |"
            )
            lines.append(
                f"| {task} accuracy, open set | {_f(cnn['accuracy_open'])} | "
                f"{_f(base.get('accuracy_open'))} | | |"
            )
        for name, scores in entry.get("features", {}).items():
            a = scores.get("auc_vs_sign")
            if a:
                lines.append(
                    f"| {name} ROC-AUC vs sign (n={a['n']}) | {_f(a['cnn'])} | "
                    f"{_f(a.get('baseline'))} | | 0.500 |"
                )
            if a and a.get("teacher") is not None:
                lines.append(
                    f"| {name} ROC-AUC vs sign, the teacher itself | {_f(a['teacher'])} | | | |"
                )
            for key, what in (
                ("cnn", "CNN vs " + "/".join(scores.get("ground_truth", ["truth"]))),
                ("cnn_vs_teacher", "CNN vs " + scores.get("cnn_vs_teacher", {}).get("teacher", "")),
                (
                    "teacher_vs_truth",
                    scores.get("teacher_vs_truth", {}).get("teacher", "") + " vs truth",
                ),
            ):
                reg = scores.get(key)
                if reg and reg.get("pearson_r") is not None:
                    tempo = (
                        f"; Acc1 {_f(reg['acc1'])}, Acc2 {_f(reg['acc2'])}" if "acc1" in reg else ""
                    )
                    lines.append(
                        f"| {name}: {what} (n={reg['n']}): r / ρ / MAE{tempo} | "
                        f"{_f(reg['pearson_r'])} / {_f(reg['spearman'])} / {_f(reg['mae'])} | | | |"
                    )
        lines += _genre_tag_lines(entry.get("genre_tags"))
        lines += key_lines(entry.get("key"))
        lines += rating_lines(entry.get("ratings"))
        lines.append("")
        for task in CLASS_TASKS:
            scores = entry.get(task, {})
            if scores.get("unknown_labels"):
                unknown = ", ".join(f"{k} ({v})" for k, v in scores["unknown_labels"].items())
                lines.append(f"Unknown {task} labels (not scored): {unknown}")
            if "confusion" in scores and "png" in scores["confusion"]:
                lines.append(f"![{source} {task}]({scores['confusion']['png']})")
        lines.append("")
    lines += ["## Where the CNN does not beat the handcrafted baseline", ""]
    below = report.get("cnn_below_baseline") or []
    lines += [f"- {b}" for b in below] or ["- nowhere (on this split)"]
    if below:
        lines += [
            "",
            "Why, in general: the CNN learns from a few hundred clips from scratch on 3 s crops "
            "within a CPU budget, while clip-level MFCC statistics summarise the whole 30-60 s "
            "clip and are hard to beat on small sets. docs/results.md discusses each case.",
        ]
    counts = report["counts"]
    lines += [
        "",
        "## Counts and settings",
        "",
        f"- clips evaluated: {counts['rows_evaluated']} ({counts['per_source']})",
        f"- train clips for the baseline: {counts['train_rows_for_baseline']}",
        f"- not decodable: {len(counts.get('not_decodable', {}))}",
    ]
    for track_id, reason in counts.get("not_decodable", {}).items():
        lines.append(f"  - {track_id}: {reason}")
    hp = {**report["hparams"], **(report["hparams"].get("logmel") or {})}  # the mel settings too
    keys = (
        "genre_names",
        "mood_names",
        "crop_seconds",
        "n_mels",
        "hop_length",
        "width",
        "embed_dim",
    )
    lines.append("- checkpoint: " + ", ".join(f"{k}={hp.get(k)}" for k in keys if k in hp))
    lines.append("")
    return "\n".join(lines)
