"""A library index kept in service: the songs below one music root, looked up by path or id,
re-read when the index file changes. What ``GET /v1/similar`` and ``GET /v1/path`` answer from
(``audiotagger serve --index``: the command builds it and hands it to the service, which never
imports the library); no HTTP here.

A song's id is a stable hash of its absolute path (:func:`song_id`): an index row would change
when the library is re-indexed. Songs of the index outside the music root are left out, so
they are never named nor listed. A file that no longer loads as an index leaves the last good
one in service.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_module.library.similarity import LibraryIndex, LibraryIndexError, Searcher
from lightning_module.library.sonic_path import PathSearch, step_distances

log = logging.getLogger("audiotagger.serve")


def song_id(path: str) -> str:
    """The id of the song at absolute ``path``: 16 hex digits of its BLAKE2b hash."""
    raw = path.encode("utf-8", "surrogateescape")
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


@functools.lru_cache(maxsize=4096)
def _file_tags(path: str, mtime_ns: int) -> tuple[str | None, str | None, int | None]:
    """(title, artist, whole seconds) from the file's tags, when mutagen (the ``library``
    extra) is installed and reads them; cached per path and mtime."""
    from lightning_module.library.playlist import track_tags

    try:
        seconds, artist, title = track_tags(path)
    except ImportError:  # no mutagen: the answer has the path, the id and nothing invented
        return None, None, None
    return title or None, artist or None, seconds if seconds >= 0 else None


@dataclass
class Loaded:
    """One load of the index file: the songs inside the music root and their lookups."""

    key: tuple[int, int, int]
    index: LibraryIndex
    searcher: Searcher
    paths: PathSearch
    relative: list[str]
    ids: dict[str, int]
    rows: dict[str, int]
    left_out: int


class SongIndex:
    """The index at ``index_path``, for its songs below ``music_root``.

    Raises:
        LibraryIndexError: the index is missing or unreadable (one line naming it).
    """

    def __init__(self, index_path: str | os.PathLike, music_root: str | os.PathLike) -> None:
        self.file = Path(index_path)
        self.root = Path(music_root).resolve()
        self._lock = threading.Lock()
        self._failed: tuple[int, int, int] | None = None
        self._loaded = self._load(self._key())

    def _key(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.file)
        except OSError as err:
            raise LibraryIndexError(f"{self.file}: no such index ({err.strerror})") from None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self, key: tuple[int, int, int]) -> Loaded:
        index = LibraryIndex.load(self.file)
        inside = [i for i, e in enumerate(index.entries) if Path(e.path).is_relative_to(self.root)]
        left_out = len(index) - len(inside)
        if left_out:  # never name or answer a file outside the root; its HNSW graph is moot
            index = LibraryIndex(
                [index.entries[i] for i in inside], index.embeddings[inside], index.model
            )
            log.warning("%s: %d song(s) outside the music root are not served", self.file, left_out)
        searcher = Searcher(index, self.file)
        return Loaded(
            key=key,
            index=index,
            searcher=searcher,
            paths=PathSearch(index, searcher),
            relative=[Path(e.path).relative_to(self.root).as_posix() for e in index.entries],
            ids={song_id(e.path): i for i, e in enumerate(index.entries)},
            rows={e.path: i for i, e in enumerate(index.entries)},
            left_out=left_out,
        )

    def current(self) -> Loaded:
        """The index in service, re-read first when its file changed (and loads)."""
        try:
            key = self._key()
        except LibraryIndexError:
            return self._loaded  # removed: keep answering from what was loaded
        if key in (self._loaded.key, self._failed):
            return self._loaded
        with self._lock:
            if key not in (self._loaded.key, self._failed):
                try:
                    self._loaded = self._load(key)
                    log.info("%s: reloaded, %d song(s)", self.file, len(self._loaded.index))
                except (LibraryIndexError, OSError) as err:
                    self._failed = key
                    log.warning("%s: not reloaded, still serving the last one (%s)", self.file, err)
        return self._loaded

    def info(self) -> dict[str, Any]:
        """The index's file name, songs served and left out, model, its notes, search kind."""
        loaded = self.current()
        return {
            "index": self.file.name,
            "songs": len(loaded.index),
            "outside_music_root": loaded.left_out,
            **self.model(loaded),
            "search": loaded.searcher.method,
        }

    @staticmethod
    def model(loaded: Loaded) -> dict[str, Any]:
        """The index's model (its identity) and the notes a user should read about it."""
        model = loaded.index.model
        return {"model": model.get("name"), "notes": [str(n) for n in model.get("notes", [])]}

    # -- lookups and answers (rows of ``loaded``) -------------------------------------------
    @staticmethod
    def row_of_id(loaded: Loaded, ident: str) -> int | None:
        return loaded.ids.get(ident)

    @staticmethod
    def row_of_path(loaded: Loaded, path: str | os.PathLike) -> int | None:
        """Row of an absolute, resolved path (None: not in the index)."""
        return loaded.rows.get(str(path))

    @staticmethod
    def song(loaded: Loaded, row: int) -> dict[str, Any]:
        """A song as the answers list it: id, path below the root (``/``-separated), title,
        artist and duration (whole seconds) from its tags (None when unknown), and the index
        model's top labels per task (``{"genre": [{"label", "probability"}, ...], ...}``)."""
        entry = loaded.index.entries[row]
        title, artist, seconds = _file_tags(entry.path, entry.mtime_ns)
        return {
            "id": song_id(entry.path),
            "path": loaded.relative[row],
            "title": title,
            "artist": artist,
            "duration": seconds,
            "model_tags": {
                task: [{"label": str(t[0]), "probability": float(t[1])} for t in ranked]
                for task, ranked in entry.tags.items()
            },
        }

    @staticmethod
    def nearest(loaded: Loaded, row: int, k: int) -> list[tuple[int, float]]:
        """(row, cosine distance) of the ``k`` songs nearest ``row``, nearest first."""
        found = loaded.searcher.query(loaded.index.embeddings[row][None], k, [row])[0]
        return [(loaded.rows[n.entry.path], n.distance) for n in found]

    @staticmethod
    def walk(
        loaded: Loaded, start: int, end: int, count: int
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """A path playlist (:class:`~.sonic_path.PathSearch`) from row ``start`` to ``end``:
        its rows, the cosine distance of each step (len - 1) and of each song from ``start``.

        Raises:
            ValueError: ``start == end`` or ``count < 2``.
        """
        rows = loaded.paths.find(start, end, count)
        x = loaded.index.embeddings
        from_start = np.maximum(0.0, 1.0 - x[rows] @ x[start])
        return rows, step_distances(x, rows), from_start
