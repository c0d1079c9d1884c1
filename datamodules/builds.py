"""Conventions shared by everything that builds a manifest folder.

Label sources (``datamodules/sources/``) and teachers that label a manifest with a model
(``lightning_module/teacher/``) write the same folder: ``manifest.csv``, ``skipped.csv`` (one row
per item left out, with a short reason and a one-line detail) and ``summary.json``; they read their
YAML config into a dataclass the same way, and fail with the same one-line :class:`SourceError`.
This module holds exactly that and imports no source, so both sides can use it.
"""

from __future__ import annotations

import hashlib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pandas as pd

from datamodules.io import atomic_open, write_json_atomic

MANIFEST_NAME = "manifest.csv"
SKIPPED_NAME = "skipped.csv"
SUMMARY_NAME = "summary.json"


class SourceError(ValueError):
    """A source that cannot be built (bad config, unreadable table); one line naming the culprit."""


@dataclass
class Skip:
    """An item left out of the manifest: ``reason`` is a short category, ``detail`` one line."""

    track_id: str
    reason: str
    detail: str = ""
    item: str = ""


# Config parsing: YAML mappings -> dataclasses, with one-line errors naming the key.


def from_mapping(cls: type, data: Mapping[str, object] | None, where: str) -> object:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively.

    Raises:
        SourceError: unknown or missing key, wrong nesting, or a value the dataclass refuses.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise SourceError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise SourceError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(names)})"
        )
    kwargs = {}
    for key, value in data.items():
        if is_dataclass(hints[key]):
            value = from_mapping(hints[key], value, f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # SourceError, SplitError, ... are ValueErrors
        raise SourceError(f"{where}: {err}") from err


def write_skipped(path: Path, skips: list[Skip]) -> None:
    frame = pd.DataFrame(
        [(s.track_id, s.reason, s.detail, s.item) for s in skips],
        columns=["track_id", "reason", "detail", "item"],
    )
    with atomic_open(path, "w", newline="") as f:
        frame.to_csv(f, index=False)


def write_summary(path: Path, data: object) -> None:
    write_json_atomic(path, data)


def file_key(path: str | os.PathLike, *parts: object) -> str:
    """A cache key for what was computed from file ``path`` by a teacher of version ``parts``:
    changes when the file (absolute path, size, modification time) or the teacher changes."""
    path = Path(path)
    stat = path.stat()
    text = "|".join(map(str, (path.resolve(), stat.st_size, stat.st_mtime_ns, *parts)))
    return hashlib.sha1(text.encode()).hexdigest()
