"""Where the predictions of :mod:`.write_tags` come from, and which model made them.

* A results file (``audiotagger tag FOLDER --out results.jsonl|csv``): read by
  :func:`~lightning_module.inference.formats.results.read_predictions`, plus the fields that
  reader does not (yet) carry: the key (``key``, ``mode``, ``key_confidence``, ``camelot``:
  JSON keys or CSV columns, checked here with the file and line of a bad one) and a
  ``model_id``.
* The model's identity (:func:`model_id_of`): the shipped model by its id and version
  (``audiotagger-student@1.0.0``), any other model file by its name and the start of its
  sha256; ``(synthetic demo)`` after it when every training clip was synthetic. For a results
  file: its rows' ``model_id``, else the model its ``.state.json`` records.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datamodules.io import file_sha256
from lightning_module.library.musical_key import KEY_FIELDS, key_of

#: Fields of a results row that :func:`read_results` adds to the prediction when the reader of
#: the formats leaves them out.
EXTRA_FIELDS = (*KEY_FIELDS, "model_id")
#: What a synthetic-only model's id says after it.
SYNTHETIC_NOTE = "(synthetic demo)"


def _raw_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every readable row; what is not readable was already refused
    (or left out as a torn last row) by ``read_predictions``."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if path.suffix.lower() == ".csv":
        for number, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), 2):
            yield number, {k: v for k, v in row.items() if k is not None}
        return
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield number, record


def result_extras(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Audio path (as the row spells it) → the :data:`EXTRA_FIELDS` its first row gives.

    Raises:
        ValueError: a malformed key (one line: file, line and field).
    """
    path = Path(path)
    extras: dict[str, dict[str, Any]] = {}
    for number, record in _raw_records(path):
        extra = {k: record[k] for k in EXTRA_FIELDS if record.get(k) not in (None, "")}
        if not extra or not record.get("path"):
            continue
        try:
            key_of(extra)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from err
        extras.setdefault(str(record["path"]), extra)
    return extras


def read_results(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """(audio path, prediction) from a results file (``.jsonl`` or ``.csv``), the prediction
    in the form :func:`~.tag_values.desired_fields` reads, unrounded, with the key when the
    row has one. A relative audio path is taken from the current folder, or else from the
    results file's folder.

    Raises:
        ValueError: a malformed line or row (one line naming the file, line and field).
    """
    from lightning_module.inference.formats.results import read_predictions

    base = Path(path).resolve().parent
    extras = result_extras(path)

    def located(audio: str) -> str:
        p = Path(audio)
        if p.is_absolute() or p.exists() or not (base / p).exists():
            return str(p)
        return str(base / p)

    for prediction in read_predictions(path):
        record = asdict(prediction)
        for name, value in extras.get(str(prediction.path), {}).items():
            if record.get(name) in (None, ""):
                record[name] = value
        yield located(str(prediction.path)), record


def model_identity(path: str | os.PathLike) -> str:
    """``best.ckpt sha256:0123456789ab``: a model file's name and the start of its hash."""
    return f"{Path(path).name} sha256:{file_sha256(path)[:12]}"


def _shipped_id(sha256: str | None = None, path: str | os.PathLike | None = None) -> str | None:
    """The shipped model's id when ``path`` is one of its files or ``sha256`` one of theirs."""
    from lightning_module.inference.shipped import ShippedModelError, shipped_details, shipped_info

    try:
        if path is not None:
            details = shipped_details(path)
            return None if details is None else str(details["model_id"])
        info = shipped_info()
        return info.model_id if sha256 in info.files.values() else None
    except ShippedModelError:
        return None


def model_id_of(path: str | os.PathLike, synthetic_only: bool = False) -> str:
    """How our fields name the model file ``path`` (see the module docstring)."""
    base = _shipped_id(path=path) or model_identity(path)
    return f"{base} {SYNTHETIC_NOTE}" if synthetic_only else base


def results_model_id(path: str | os.PathLike) -> str | None:
    """The model of a results file: the first ``model_id`` its rows give, else the model its
    ``<results>.state.json`` records (a library run's), else None."""
    for extra in result_extras(path).values():
        if extra.get("model_id"):
            return str(extra["model_id"])
    state = Path(str(path) + ".state.json")
    try:
        model = json.loads(state.read_text(encoding="utf-8")).get("model") or {}
    except (OSError, ValueError, AttributeError):
        return None
    sha = model.get("sha256") if isinstance(model, dict) else None
    if not isinstance(sha, str) or not sha:
        return None
    return _shipped_id(sha256=sha) or f"{Path(str(model.get('path'))).name} sha256:{sha[:12]}"
