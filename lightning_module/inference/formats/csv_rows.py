"""A prediction as one flat CSV row, and such a row read back.

The row (:func:`prediction_record`, columns :func:`prediction_columns`): ``path``, ``start``,
``duration`` (seconds, 3 decimals), ``windows``; the top genre and mood with their probability;
one column per feature of the model (empty: not trained on it); with a key head ``key``,
``mode``, ``key_confidence``, ``camelot``; every class probability
(``genre:<name>``, ``mood:<name>``, ``tag:<name>``; 4 decimals) and, with a genre-tag head,
``genre_tags``: the top :data:`GENRE_TAG_TOP` genre tags as text (``Pop/Rock 0.81; Jazz 0.40``).
:func:`prediction_from_row` is its inverse to that rounding; ``feature_basis`` is not in a row,
nor are the genre tags below the top three. Columns it does not know (a library table's
``file_bytes``, ``file_mtime_ns``) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.decoders import DECODERS
from lightning_module.inference.prediction import DEDICATED, ClipPrediction
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS, Task

#: Genre tags a CSV row lists (the ``genre_tags`` column: most probable first).
GENRE_TAG_TOP = 3


def class_columns() -> list[tuple[str, str]]:
    """(task, column prefix) of the per-class probability columns, from ``model.tasks.TASKS``."""
    return [(t.name, t.class_prefix) for t in TASKS if t.class_prefix]


def top_columns() -> list[str]:
    """Tasks whose top label and its probability are columns of their own (``genre``, ``mood``)."""
    return [t.name for t in TASKS if t.top_column]


def decoded_tasks() -> list[Task]:
    """Tasks with a decoder (the key): their decoder's flat fields are columns."""
    return [t for t in TASKS if t.decoder]


def _ranked(prediction: ClipPrediction, task: str) -> list[tuple[str, float]]:
    """A task's ranked labels: its own field (genre, mood, tags) or ``classes``."""
    if task in DEDICATED:
        return getattr(prediction, task)
    return prediction.classes.get(task, [])


def top_genre_tags(prediction: ClipPrediction, top: int = GENRE_TAG_TOP, sep: str = "; ") -> str:
    """The ``top`` most probable genre tags as ``Pop/Rock 0.81; Electronic 0.42`` ("" for a
    model without the genre-tag head)."""
    ranked = list(prediction.genre_tags.items())[:top]
    return sep.join(f"{name} {p:.2f}" for name, p in ranked)


def parse_genre_tags(text: str, sep: str = "; ") -> dict[str, float]:
    """The inverse of :func:`top_genre_tags`: ``{"Pop/Rock": 0.81, ...}`` (names may hold
    spaces: the probability is the last word)."""
    tags: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(sep))):
        name, _, probability = item.rpartition(" ")
        if not name:
            raise ValueError(f"genre tag {item!r} has no probability")
        tags[name] = float(probability)
    return tags


def prediction_columns(spec: TaggerSpec | Mapping[str, Any]) -> list[str]:
    """CSV columns of :func:`prediction_record` for a model with this spec."""
    spec = spec if isinstance(spec, TaggerSpec) else TaggerSpec.from_hparams(spec)
    columns = ["path", "start", "duration", "windows"]
    for task in top_columns():
        if spec.names(task):
            columns += [task, f"{task}_probability"]
    columns += list(spec.feature_names)
    for task in decoded_tasks():
        if spec.names(task.name):
            columns += list(DECODERS[task.decoder].fields)
    for task, prefix in class_columns():
        columns += [f"{prefix}:{name}" for name in spec.names(task)]
    if spec.genre_tag_names:  # one column: the top genre tags with their probabilities
        columns.append("genre_tags")
    return columns


def prediction_record(prediction: ClipPrediction) -> dict[str, Any]:
    """One flat row (see the module docstring); a feature the model was not trained on has no
    key (its cell stays empty)."""
    record: dict[str, Any] = {
        "path": prediction.path,
        "start": round(prediction.start, 3),
        "duration": round(prediction.duration, 3),
        "windows": prediction.windows,
    }
    for task in top_columns():
        ranked = _ranked(prediction, task)
        if ranked:
            record[task], record[f"{task}_probability"] = ranked[0][0], round(ranked[0][1], 4)
    record.update({k: round(v, 4) for k, v in prediction.features.items()})
    record.update(prediction.decoded)
    for task, prefix in class_columns():
        record.update({f"{prefix}:{n}": round(p, 4) for n, p in _ranked(prediction, task)})
    if prediction.genre_tags:
        record["genre_tags"] = top_genre_tags(prediction)
    return record


def prediction_from_row(row: Mapping[str | None, str | None]) -> ClipPrediction:
    """A row of :func:`prediction_record` (as ``csv.DictReader`` gives it) read back; a column
    it lacks or leaves empty is not predicted (``start``/``duration``/``windows``: 0). Only the
    features the project defines (``FEATURE_UNITS``) are features.

    Raises:
        ValueError: a cell that is not a number where one belongs.
    """

    def cell(key: str) -> str | None:
        value = row.get(key)
        return None if value in (None, "") else value

    ranked: dict[str, list[tuple[str, float]]] = {}
    for task, prefix in class_columns():
        pairs = [
            (key[len(prefix) + 1 :], float(value))
            for key, value in row.items()
            if key and key.startswith(f"{prefix}:") and value not in (None, "")
        ]
        top = cell(task) if task in top_columns() else None
        if not pairs and top is not None:  # a hand-made table with only the top class
            probability = cell(f"{task}_probability")
            if probability is None:
                raise ValueError(f"{task} {top!r} without {task}_probability")
            pairs = [(top, float(probability))]
        ranked[task] = sorted(pairs, key=lambda pair: -pair[1])
    features = {
        key: float(value)
        for key, value in row.items()
        if key in FEATURE_UNITS and value not in (None, "")
    }
    decoded: dict[str, Any] = {}
    for task in decoded_tasks():
        decoded.update(DECODERS[task.decoder].parse(row))
    return ClipPrediction(
        path=cell("path"),
        duration=float(cell("duration") or 0.0),
        windows=int(cell("windows") or 0),
        genre=ranked["genre"],
        mood=ranked["mood"],
        features=features,
        tags=ranked["tags"],
        start=float(cell("start") or 0.0),
        genre_tags=parse_genre_tags(cell("genre_tags") or ""),
        classes={t: r for t, r in ranked.items() if t not in DEDICATED and r},
        decoded=decoded,
    )
