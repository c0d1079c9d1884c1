"""Sound-alike items of a beets library, from the index behind ``audiotagger similar``.

The index (:mod:`lightning_module.library.similarity`: one L2-normalised mean embedding per
file, exact or HNSW cosine search) covers the library's items and lives in beets' config folder
(``<BEETSDIR>/audiotagger/similarity.npz`` unless ``audiotagger.index`` says otherwise). Each
query brings it up to date first: only items new or changed since (size or mtime) are embedded,
items gone from the library are dropped, and an index made by another model is rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_module.beets_plugin.model import ModelRef
from lightning_module.library.similarity import (
    IndexStats,
    LibraryIndex,
    Neighbour,
    Searcher,
    model_info,
    update_index,
)

#: The index file under beets' config folder.
INDEX_NAME = Path("audiotagger") / "similarity.npz"


def default_index_path(config_dir: str | os.PathLike) -> Path:
    """Where the library's index lives when ``audiotagger.index`` is not set."""
    return Path(config_dir) / INDEX_NAME


@dataclass
class Refreshed:
    """An up-to-date index and what the refresh did."""

    index: LibraryIndex
    stats: IndexStats
    #: files of library items that are not on disk (left out of the index)
    missing: list[str]


def refresh_index(
    items: Iterable[Any],
    model: ModelRef,
    index_path: str | os.PathLike,
    warn: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Refreshed:
    """Bring the index at ``index_path`` up to date with the files of ``items`` (beets items);
    files that vanished are left out and listed, files that cannot be decoded are reported
    through ``warn`` (one line each)."""
    index_path = Path(index_path)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    present, missing = [], []
    for item in items:
        path = os.fsdecode(item.path)
        (present if os.path.isfile(path) else missing).append(path)
    if not present:
        raise LookupError("the library has no item whose file is on disk")
    info = model_info(model.path, model.tagger)
    sink = _LineSink(warn) if warn is not None else None
    index, stats = update_index(
        model.tagger, "", index_path, info, progress=progress, errors=sink, files=present
    )
    return Refreshed(index, stats, missing)


def neighbours(
    refreshed: Refreshed, index_path: str | os.PathLike, paths: Sequence[str], k: int
) -> list[tuple[str, list[Neighbour]]]:
    """The ``k`` nearest items of each file of ``paths`` (files of the index), the file itself
    left out; a file not in the index (it could not be decoded) gets an empty list."""
    index = refreshed.index
    searcher = Searcher(index, index_path)
    answers = []
    for path in paths:
        row = index.position(path)
        if row is None:
            answers.append((path, []))
            continue
        answers.append((path, searcher.query(index.embeddings[row][None], k, [row])[0]))
    return answers


class _LineSink:
    """A text stream that hands each whole line to ``warn`` (what ``update_index`` writes its
    ``skipped: <file>: <reason>`` lines to)."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if line:
                self.warn(line)
        return len(text)

    def flush(self) -> None:
        pass
