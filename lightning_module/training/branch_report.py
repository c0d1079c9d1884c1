"""The branch refit's report as a markdown table (printed by ``scripts/fit_branches.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _cell(scores: Mapping[str, Any], key: str) -> str:
    value = scores.get(key)
    return "–" if value is None else f"{value:.3f}"


def _table(section: Mapping[str, Any], head: str, metrics: dict[str, str]) -> list[str]:
    """One markdown table: a row per candidate, cross-validation, val and test columns of each
    metric (``metrics``: report key → column title), the chosen candidate marked."""
    splits = (("cv", "CV"), ("val", "val"), ("test", "test"))
    titles = [f"{split} {title}" for _, split in splits for title in metrics.values()]
    lines = [f"| {head} | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for name, scores in section["candidates"].items():
        chosen = " (chosen)" if name == section["chosen"] else ""
        cells = [_cell(scores.get(s, {}), k) for s, _ in splits for k in metrics]
        lines.append(f"| {name}{chosen} | " + " | ".join(cells) + " |")
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """Every candidate's cross-validation, val and test scores, and the clip counts."""
    counts = report["clips"]
    lines = [
        "clips with labels (tempo / key): "
        + ", ".join(f"{s} {c['tempo']} / {c['key']}" for s, c in counts.items()),
        "",
        f"chosen by {report.get('chosen_by', 'val')}; written: {report.get('final_fit', '')}",
        "",
        *_table(report["key"], "key candidate", {"accuracy": "accuracy", "weighted": "MIREX"}),
        "",
        *_table(report["tempo"], "tempo candidate", {"acc1": "Acc1", "acc2": "Acc2"}),
        f"\nwrote {report['out']}",
    ]
    return "\n".join(lines)
