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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datamodules.audio import AUDIO_EXTENSIONS, AudioError
from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.tagger import ClipPrediction, Tagger
from lightning_module.model.spec import TaggerSpec


def format_prediction(prediction: ClipPrediction, top: int = 3) -> str:
    """Human-readable summary: top genres, moods and tags, and every feature in natural units."""
    lines = [
        f"{prediction.path or 'audio'}  "
        f"({prediction.duration:.1f} s, {prediction.windows} window(s))"
    ]
    for key in ("genre", "mood", "tags"):
        ranked = getattr(prediction, key)[:top]
        if ranked:
            lines.append(f"  {key + ':':<9}" + ", ".join(f"{name} {p:.2f}" for name, p in ranked))
    if prediction.features:
        lines.append("  features:")
        for name, value in prediction.features.items():
            unit = FEATURE_UNITS.get(name, "")
            text = f"{value:.1f} {unit}" if unit else f"{value:.3f}"
            lines.append(f"    {name:<17}{text}")
    return "\n".join(lines)


# -- libraries, tables and files ------------------------------------------------------------------
def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, by extension), sorted; hidden ones skipped."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


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
    return columns


def prediction_record(prediction: ClipPrediction) -> dict[str, Any]:
    """One flat row: top genre and mood with their probability, every feature, every class
    probability (``genre:<name>``, ``mood:<name>``, ``tag:<name>``)."""
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


# -- whole folders ------------------------------------------------------------------------------
@dataclass
class LibraryReport:
    """What :func:`tag_library` did: files tagged, and (file, reason) for each file skipped."""

    tagged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def tag_library(
    tagger: Tagger,
    folder: str | os.PathLike,
    stream: IO[str],
    fmt: str = "csv",
    top: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    progress: bool = True,
    errors: IO[str] | None = None,
) -> LibraryReport:
    """Tag every audio file under ``folder`` with one model, batched, and write CSV / JSON lines
    to ``stream`` as results arrive; an unreadable file is skipped and reported on ``errors``
    (one ``skipped: <file>: <reason>`` line each) and the run goes on."""
    from tqdm.auto import tqdm

    files = audio_files(folder)
    if not files:
        raise AudioError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    writer = PredictionWriter(stream, fmt, tagger.spec, top)
    report = LibraryReport()
    results = tagger.predict_files(files, offset, duration)
    bar = tqdm(results, total=len(files), unit="file", disable=not progress, leave=False)
    for result in bar:
        if isinstance(result, AudioError):
            path, _, reason = str(result).partition(": ")
            report.skipped.append((path, reason))
            if errors is not None:
                bar.write(f"skipped: {result}", file=errors)  # above the bar, not through it
        else:
            writer.write(result)
            report.tagged += 1
    return report
