"""The headline of an evaluation: one number per source and question, and per-class accuracy.

Read from an evaluation report (:mod:`.evaluator`): per source, genre accuracy among every genre
the model knows (``open``: what a user gets) and among the genres that source has (``closed``),
mood macro-F1, and the ROC-AUC of the ``energy`` / ``valence`` outputs against listeners'
arousal / valence signs; per class, how many clips of it there were and how many came out right,
with classes too small to judge marked as such.
"""

from __future__ import annotations

from typing import Any

#: Fewer test clips of a class than this: its accuracy is printed but said to be too few to judge.
MIN_CLIPS_TO_JUDGE = 5
#: Feature outputs ranked against listeners' signs, and the question each answers.
SIGNED = {"energy": "arousal", "valence": "valence"}


def headline(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per source (and ``all``): ``genre_open`` / ``genre_closed`` accuracy, ``mood_macro_f1``,
    ``arousal_auc`` / ``valence_auc``, each with its clip count ``n_<name>``; only what exists."""
    out: dict[str, dict[str, Any]] = {}
    for source, entry in report.get("sources", {}).items():
        row: dict[str, Any] = {}
        genre = (entry.get("genre") or {}).get("cnn")
        if genre:
            row |= {
                "genre_open": genre["accuracy_open"],
                "genre_closed": genre["accuracy"],
                "n_genre": genre["n"],
            }
        mood = (entry.get("mood") or {}).get("cnn")
        if mood:
            row |= {"mood_macro_f1": mood["macro_f1"], "n_mood": mood["n"]}
        for feature, question in SIGNED.items():
            sign = ((entry.get("features") or {}).get(feature) or {}).get("auc_vs_sign")
            if sign and sign.get("cnn") is not None:
                row |= {f"{question}_auc": sign["cnn"], f"n_{question}": sign["n"]}
        if row:
            out[source] = row
    return out


def per_class_accuracy(report: dict[str, Any], task: str, source: str = "all") -> list[dict]:
    """Per true class of ``task`` in ``source``: clips, correct (open-set prediction), accuracy
    and whether there are enough clips to judge; from the report's confusion matrix."""
    entry = report.get("sources", {}).get(source) or {}
    matrix = (entry.get(task) or {}).get("confusion")
    if not matrix:
        return []
    rows = []
    for label, counts in zip(matrix["true"], matrix["matrix"], strict=True):
        n = int(sum(counts))
        right = int(counts[matrix["predicted"].index(label)]) if label in matrix["predicted"] else 0
        rows.append(
            {
                "label": label,
                "n": n,
                "correct": right,
                "accuracy": right / n if n else None,
                "judged": n >= MIN_CLIPS_TO_JUDGE,
            }
        )
    return rows


def _cell(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return "–" if value is None else f"{value:.3f} ({row.get('n_' + name.split('_')[0], '?')})"


def headline_lines(report: dict[str, Any]) -> list[str]:
    """Markdown: the headline table, then per-genre accuracy with counts."""
    table = headline(report)
    if not table:
        return []
    lines = [
        "## Headline",
        "",
        "| source | genre acc, all genres (clips) | genre acc, its genres | mood macro-F1 | "
        "arousal AUC | valence AUC |",
        "|---|---|---|---|---|---|",
    ]
    for source, row in table.items():
        closed = row.get("genre_closed")
        lines.append(
            f"| {source} | {_cell(row, 'genre_open')} | "
            f"{'–' if closed is None else f'{closed:.3f}'} | {_cell(row, 'mood_macro_f1')} | "
            f"{_cell(row, 'arousal_auc')} | {_cell(row, 'valence_auc')} |"
        )
    source = "all" if "all" in report.get("sources", {}) else next(iter(report["sources"]))
    classes = per_class_accuracy(report, "genre", source)
    if classes:
        lines += ["", "| genre | clips | right | accuracy |", "|---|---|---|---|"]
        for c in classes:
            note = (
                "" if c["judged"] else f" (fewer than {MIN_CLIPS_TO_JUDGE} clips: too few to judge)"
            )
            accuracy = "–" if c["accuracy"] is None else f"{c['accuracy']:.2f}"
            lines.append(f"| {c['label']} | {c['n']} | {c['correct']} | {accuracy}{note} |")
    return [*lines, ""]
