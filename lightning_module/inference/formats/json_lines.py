"""A prediction as one JSON object (one line of a JSON lines file), and such an object read back.

The object is :meth:`ClipPrediction.to_dict` (what ``predict_clip --json`` prints and the service
answers): ``genre``/``mood``/``tags`` as ``[{"label", "probability"}]`` (the ``top`` most probable,
4 decimals), ``features``, ``genre_tags`` (every one; no key without that head) to 4 decimals,
``start``, ``duration``, ``windows``, ``feature_basis``; with a key head the flat ``key``,
``mode``, ``key_confidence``, ``camelot``; further classification tasks under their names.
:func:`prediction_from_dict` is its inverse to that rounding. Keys it does not know (a library
table's ``file_bytes``) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lightning_module.inference.decoders import DECODERS
from lightning_module.inference.prediction import DEDICATED, ClipPrediction
from lightning_module.model.tasks import TASKS


def prediction_dict(
    prediction: ClipPrediction, top: int | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON object of ``prediction`` (``top`` classes of each ranking; ``None``: all),
    followed by the ``extra`` keys."""
    return {**prediction.to_dict(top), **(extra or {})}


def prediction_line(
    prediction: ClipPrediction, top: int | None = None, extra: Mapping[str, Any] | None = None
) -> str:
    """One JSON line (newline included)."""
    return json.dumps(prediction_dict(prediction, top, extra)) + "\n"


def _ranked(items: Any) -> list[tuple[str, float]]:
    pairs = []
    for item in items or ():
        if isinstance(item, Mapping):
            pairs.append((str(item["label"]), float(item["probability"])))
        else:  # a hand-written [label, probability] pair
            label, probability = item
            pairs.append((str(label), float(probability)))
    return pairs


def _numbers(values: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (values or {}).items() if v is not None}


def prediction_from_dict(record: Mapping[str, Any]) -> ClipPrediction:
    """The inverse of :func:`prediction_dict`. A key it lacks is not predicted (``start``,
    ``duration``, ``windows``: 0), so a hand-written ``{"path", "genre", "features"}`` reads.

    Raises:
        ValueError: a value of the wrong shape (``TypeError``/``KeyError`` become this too).
    """
    try:
        path = record.get("path")
        decoded: dict[str, Any] = {}
        for task in TASKS:
            if task.decoder:
                decoded.update(DECODERS[task.decoder].parse(record))
        classes = {
            t.name: _ranked(record.get(t.name))
            for t in TASKS
            if t.name not in DEDICATED and not t.decoder and record.get(t.name)
        }
        return ClipPrediction(
            path=None if path is None else str(path),
            duration=float(record.get("duration") or 0.0),
            windows=int(record.get("windows") or 0),
            genre=_ranked(record.get("genre")),
            mood=_ranked(record.get("mood")),
            features=_numbers(record.get("features")),
            tags=_ranked(record.get("tags")),
            start=float(record.get("start") or 0.0),
            feature_basis={str(k): str(v) for k, v in (record.get("feature_basis") or {}).items()},
            genre_tags=_numbers(record.get("genre_tags")),
            classes=classes,
            decoded=decoded,
        )
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"not a prediction ({type(err).__name__}: {err})") from err
