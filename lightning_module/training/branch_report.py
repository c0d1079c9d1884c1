"""The branch refit's report as a markdown table (printed by ``scripts/fit_branches.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _cell(scores: Mapping[str, Any], key: str) -> str:
    value = scores.get(key)
    return "–" if value is None else f"{value:.3f}"


def format_report(report: Mapping[str, Any]) -> str:
    """Every candidate's val scores, the chosen one's test scores, and the clip counts."""
    counts = report["clips"]
    lines = [
        "clips with labels (tempo / key): "
        + ", ".join(f"{s} {c['tempo']} / {c['key']}" for s, c in counts.items()),
        "",
        f"chosen by {report.get('chosen_by', 'val')}; written: {report.get('final_fit', '')}",
        "",
        "| key candidate | CV accuracy | CV MIREX | val accuracy | val MIREX | test accuracy "
        "| test MIREX |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, scores in report["key"]["candidates"].items():
        chosen = " (chosen)" if name == report["key"]["chosen"] else ""
        val, test, cv = scores["val"], scores["test"], scores.get("cv", {})
        lines.append(
            f"| {name}{chosen} | {_cell(cv, 'accuracy')} | {_cell(cv, 'weighted')} "
            f"| {_cell(val, 'accuracy')} | {_cell(val, 'weighted')} "
            f"| {_cell(test, 'accuracy')} | {_cell(test, 'weighted')} |"
        )
    lines += [
        "",
        "| tempo candidate | CV Acc1 | CV Acc2 | val Acc1 | val Acc2 | test Acc1 | test Acc2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, scores in report["tempo"]["candidates"].items():
        chosen = " (chosen)" if name == report["tempo"]["chosen"] else ""
        val, test, cv = scores["val"], scores["test"], scores.get("cv", {})
        lines.append(
            f"| {name}{chosen} | {_cell(cv, 'acc1')} | {_cell(cv, 'acc2')} "
            f"| {_cell(val, 'acc1')} | {_cell(val, 'acc2')} "
            f"| {_cell(test, 'acc1')} | {_cell(test, 'acc2')} |"
        )
    lines.append(f"\nwrote {report['out']}")
    return "\n".join(lines)
