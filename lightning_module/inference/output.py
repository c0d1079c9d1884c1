"""Present what a :class:`~.tagger.Tagger` says: text summaries, CSV / JSON lines
rows and streams, timeline tables and plots, and a whole library tagged into one table.

Kept apart from :mod:`lightning_module.inference.tagger` so the inference path stays free of output
concerns; matplotlib is imported only when a plot is asked for.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.tagger import ClipPrediction
from lightning_module.model.spec import TaggerSpec

#: Genre tags a CSV row lists (the ``genre_tags`` column: most probable first).
GENRE_TAG_TOP = 3


def format_prediction(prediction: ClipPrediction, top: int = 3) -> str:
    """Human-readable summary: top genres, moods, tags and genre tags (``top`` of each), and every
    feature in natural units."""
    lines = [
        f"{prediction.path or 'audio'}  "
        f"({prediction.duration:.1f} s, {prediction.windows} window(s))"
    ]
    for key in ("genre", "mood", "tags"):
        ranked = getattr(prediction, key)[:top]
        if ranked:
            lines.append(f"  {key + ':':<9}" + ", ".join(f"{name} {p:.2f}" for name, p in ranked))
    if prediction.genre_tags:  # the multi-label genre-tag head, when the model has one
        lines.append(f"  genre tags: {top_genre_tags(prediction, top, ', ')}")
    if prediction.features:
        lines.append("  features:                 (trained on)")
        for name, value in prediction.features.items():
            unit = FEATURE_UNITS.get(name, "")
            text = f"{value:.1f} {unit}" if unit else f"{value:.3f}"
            basis = prediction.feature_basis.get(name, "")
            lines.append(f"    {name:<17}{text:<9}  {basis}".rstrip())
    return "\n".join(lines)


def model_notes(spec: TaggerSpec) -> list[str]:
    """One-line notes a user should read before trusting the answers (printed once per run)."""
    notes = []
    if spec.synthetic_only:
        notes.append(
            "note: this model was trained only on the synthetic demo set; on real music its "
            "answers mean little. Train on real music with `make train-real`."
        )
    missing = [f for f in spec.feature_names if f not in spec.trained_features]
    if missing:
        notes.append(f"note: not trained on {', '.join(missing)}: not shown")
    if not spec.provenance_known and spec.feature_names:
        notes.append(
            "note: this checkpoint predates provenance records; its features may include ones "
            "it never learned from real audio"
        )
    return notes


def top_genre_tags(prediction: ClipPrediction, top: int = GENRE_TAG_TOP, sep: str = "; ") -> str:
    """The ``top`` most probable genre tags as ``Pop/Rock 0.81; Electronic 0.42`` ("" for a
    model without the genre-tag head)."""
    ranked = list(prediction.genre_tags.items())[:top]
    return sep.join(f"{name} {p:.2f}" for name, p in ranked)


# -- libraries, tables and files ------------------------------------------------------------------
def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, by name: ``library.list_library``), sorted;
    hidden files and folders left out."""
    from lightning_module.inference.library import list_library  # it imports this module

    return list_library(folder).audio


def prediction_columns(spec: TaggerSpec | Mapping[str, Any]) -> list[str]:
    """CSV columns of :func:`prediction_record` for a model with this spec."""
    spec = spec if isinstance(spec, TaggerSpec) else TaggerSpec.from_hparams(spec)
    columns = ["path", "start", "duration", "windows"]
    for task in ("genre", "mood"):
        if spec.names(task):
            columns += [task, f"{task}_probability"]
    columns += list(spec.feature_names)
    for task, prefix in (("genre", "genre"), ("mood", "mood"), ("tags", "tag")):
        columns += [f"{prefix}:{name}" for name in spec.names(task)]
    if spec.genre_tag_names:  # one column: the top genre tags with their probabilities
        columns.append("genre_tags")
    return columns


def prediction_record(prediction: ClipPrediction) -> dict[str, Any]:
    """One flat row: top genre and mood with their probability, every feature, every class
    probability (``genre:<name>``, ``mood:<name>``, ``tag:<name>``) and, with a genre-tag head,
    ``genre_tags``: the top :data:`GENRE_TAG_TOP` genre tags (``Pop/Rock 0.81; Jazz 0.40; ...``)."""
    record: dict[str, Any] = {
        "path": prediction.path,
        "start": round(prediction.start, 3),
        "duration": round(prediction.duration, 3),
        "windows": prediction.windows,
    }
    for task in ("genre", "mood"):
        ranked = getattr(prediction, task)
        if ranked:
            record[task], record[f"{task}_probability"] = ranked[0][0], round(ranked[0][1], 4)
    record.update({k: round(v, 4) for k, v in prediction.features.items()})
    for task, key in (("genre", "genre"), ("mood", "mood"), ("tags", "tag")):
        record.update({f"{key}:{n}": round(p, 4) for n, p in getattr(prediction, task)})
    if prediction.genre_tags:
        record["genre_tags"] = top_genre_tags(prediction)
    return record


class PredictionWriter:
    """Streams predictions to ``stream`` as CSV (``fmt="csv"``, header first) or JSON lines
    (``fmt="jsonl"``, :meth:`ClipPrediction.to_dict`), flushing each so a long run can be
    watched and an interrupted one keeps what it wrote."""

    def __init__(self, stream: IO[str], fmt: str, spec: TaggerSpec, top: int | None = None) -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
        self.stream, self.fmt, self.top = stream, fmt, top
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, prediction_columns(spec), extrasaction="ignore")
            self._csv.writeheader()

    def write(self, prediction: ClipPrediction) -> None:
        if self.fmt == "csv":
            self._csv.writerow(prediction_record(prediction))
        else:
            self.stream.write(json.dumps(prediction.to_dict(self.top)) + "\n")
        self.stream.flush()


#: Columns of the timeline table: (feature, header).
TIMELINE_FEATURES = (("energy", "energy"), ("valence", "valence"))


def format_timeline(windows: Sequence[ClipPrediction]) -> str:
    """A table with one line per window: time span, top genre and mood, energy and valence."""
    header = f"{'start':>8} {'end':>8}  {'genre':<18} {'mood':<16}" + "".join(
        f" {title:>8}" for _, title in TIMELINE_FEATURES
    )
    lines = [header]
    for w in windows:
        genre = f"{w.genre[0][0]} {w.genre[0][1]:.2f}" if w.genre else "-"
        mood = f"{w.mood[0][0]} {w.mood[0][1]:.2f}" if w.mood else "-"
        values = "".join(
            f" {w.features[name]:>8.3f}" if name in w.features else f" {'-':>8}"
            for name, _ in TIMELINE_FEATURES
        )
        lines.append(
            f"{_clock(w.start):>8} {_clock(w.start + w.duration):>8}  {genre:<18} {mood:<16}"
            + values
        )
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"
