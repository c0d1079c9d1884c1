"""Songs that sound alike, and path playlists, over HTTP: ``GET /v1/similar``, ``GET /v1/path``.

They answer from a library index made by ``audiotagger similar index`` (``--index``), never by
running the model: a song is named by its path below the music root (``--music-root``: refused
outside it, as ``tag-path``) or by its id, a stable hash of its path (:func:`song_id`; an index
row would change when the library is re-indexed). The index file is re-read when it changes on
disk; a file that no longer loads leaves the last good one in service.

Each song's ``similarity`` is ``1 - cosine_distance / 2`` = ``(1 + cos) / 2`` of the two
embeddings: 1 for the same direction, 0.5 for unrelated (orthogonal) ones, 0 for opposite ones;
``distance`` = ``cosine_distance / 2`` = ``1 - similarity`` is OpenSubsonic's normalised
``sonicMatch.distance`` (0 identical, 1 most dissimilar). docs/service.md maps the fields onto
``getSonicSimilarTracks`` and ``findSonicPath``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query

from lightning_module.library.similarity import LibraryIndex, LibraryIndexError, Searcher
from lightning_module.library.sonic_path import PathSearch, step_distances
from lightning_module.serving.limits import HTTPError, resolve_inside

log = logging.getLogger("audiotagger.serve")

#: Most songs one ``/v1/similar`` answer lists, and most songs of one ``/v1/path`` playlist;
#: a larger ``count`` is cut to these (the answer says so), as OpenSubsonic's ``count`` is "at
#: most this many".
MAX_SIMILAR = 500
MAX_PATH = 100
#: A song id: 16 lowercase hex digits (:func:`song_id`).
ID_PATTERN = re.compile(r"[0-9a-f]{16}")
METHOD = (
    "beam search over each song's nearest neighbours and the songs near the straight A-B line, "
    "minimising the sum of squared cosine distances between consecutive songs "
    "(lightning_module/library/sonic_path.py)"
)
SIMILARITY = "1 - cosine_distance / 2 of the two songs' embeddings"


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
class _Loaded:
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
    """The library index the service answers from: songs below ``music_root`` only.

    Raises:
        LibraryIndexError: (at start) the index is missing or unreadable; one line naming it.
    """

    def __init__(self, index_path: str | os.PathLike, music_root: Path) -> None:
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

    def _load(self, key: tuple[int, int, int]) -> _Loaded:
        index = LibraryIndex.load(self.file)
        inside = [i for i, e in enumerate(index.entries) if Path(e.path).is_relative_to(self.root)]
        left_out = len(index) - len(inside)
        if left_out:  # never name or answer a file outside the root; its HNSW graph is moot
            index = LibraryIndex(
                [index.entries[i] for i in inside], index.embeddings[inside], index.model
            )
            log.warning("%s: %d song(s) outside the music root are not served", self.file, left_out)
        searcher = Searcher(index, self.file)
        relative = [Path(e.path).relative_to(self.root).as_posix() for e in index.entries]
        return _Loaded(
            key=key,
            index=index,
            searcher=searcher,
            paths=PathSearch(index, searcher),
            relative=relative,
            ids={song_id(e.path): i for i, e in enumerate(index.entries)},
            rows={e.path: i for i, e in enumerate(index.entries)},
            left_out=left_out,
        )

    def current(self) -> _Loaded:
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
        """What ``GET /v1/model`` says about the index."""
        loaded = self.current()
        model = loaded.index.model
        return {
            "index": self.file.name,
            "songs": len(loaded.index),
            "outside_music_root": loaded.left_out,
            "model": model.get("name"),
            "notes": [str(n) for n in model.get("notes", [])],
            "search": loaded.searcher.method,
        }

    # -- answers ----------------------------------------------------------------------------------
    def row(self, loaded: _Loaded, ref: str, name: str) -> int:
        """The row of a song named by id or by path below the root (``name``: the parameter)."""
        if ID_PATTERN.fullmatch(ref):
            if ref not in loaded.ids:
                raise HTTPError(404, f"{name} {ref}: no song with this id in the index")
            return loaded.ids[ref]
        path = resolve_inside(self.root, ref)  # 403 outside the root: .., symlinks, elsewhere
        row = loaded.rows.get(str(path))
        if row is None:
            what = "no such file" if not path.exists() else "not in the similarity index"
            raise HTTPError(404, f"{ref[:255]}: {what} (index it: audiotagger similar index)")
        return row

    def song(self, loaded: _Loaded, row: int) -> dict[str, Any]:
        """A song as the answers list it: id, path below the root, file tags, model tags."""
        entry = loaded.index.entries[row]
        title, artist, seconds = _file_tags(entry.path, entry.mtime_ns)
        return {
            "id": song_id(entry.path),
            "path": loaded.relative[row],
            "title": title,
            "artist": artist,
            "duration": seconds,
            # the index model's top labels per task, as /v1/tag lists them
            "model_tags": {
                task: [{"label": str(t[0]), "probability": float(t[1])} for t in ranked]
                for task, ranked in entry.tags.items()
            },
        }

    def _meta(self, loaded: _Loaded, asked: int, given: int, cap: int) -> dict[str, Any]:
        return {
            "count": given,
            "count_asked": asked,
            "count_cap": cap,
            "capped": asked > cap,
            "similarity": SIMILARITY,
            "index": {
                "songs": len(loaded.index),
                "model": loaded.index.model.get("name"),
                "notes": [str(n) for n in loaded.index.model.get("notes", [])],
            },
        }

    def similar(self, ref: str, name: str, count: int) -> dict[str, Any]:
        """``count`` (at most :data:`MAX_SIMILAR`) songs nearest the song ``ref``."""
        loaded = self.current()
        row = self.row(loaded, ref, name)
        k = min(count, MAX_SIMILAR)
        found = loaded.searcher.query(loaded.index.embeddings[row][None], k, [row])[0]
        matches = []
        for rank, n in enumerate(found, 1):
            match = self.song(loaded, loaded.rows[n.entry.path])
            matches.append({"rank": rank, **match, **_scores(n.distance)})
        return {
            "song": self.song(loaded, row),
            **self._meta(loaded, count, len(matches), MAX_SIMILAR),
            "matches": matches,
        }

    def path(self, start: str, end: str, count: int) -> dict[str, Any]:
        """A path playlist of ``count`` songs (at most :data:`MAX_PATH`) from ``start`` to
        ``end``, in order."""
        loaded = self.current()
        a, b = self.row(loaded, start, "from"), self.row(loaded, end, "to")
        if a == b:
            raise HTTPError(422, f"from and to are the same song ({start})")
        rows = loaded.paths.find(a, b, min(count, MAX_PATH))
        x = loaded.index.embeddings
        steps = step_distances(x, rows)
        from_start = np.maximum(0.0, 1.0 - x[rows] @ x[a])
        songs = []
        for position, row in enumerate(rows):
            step = float(steps[position - 1]) if position else None
            songs.append(
                {
                    "position": position,
                    **self.song(loaded, row),
                    **_scores(float(from_start[position])),
                    "step_similarity": None if step is None else round(1.0 - step / 2.0, 6),
                    "step_cosine_distance": None if step is None else round(step, 6),
                }
            )
        return {
            "from": songs[0]["id"],
            "to": songs[-1]["id"],
            **self._meta(loaded, count, len(songs), MAX_PATH),
            "method": METHOD,
            "steps": {
                "mean_cosine_distance": round(float(steps.mean()), 6),
                "max_cosine_distance": round(float(steps.max()), 6),
            },
            "songs": songs,
        }


def _scores(cosine_distance: float) -> dict[str, float]:
    d = min(max(cosine_distance, 0.0), 2.0)
    return {
        "similarity": round(1.0 - d / 2.0, 6),
        "distance": round(d / 2.0, 6),
        "cosine_distance": round(d, 6),
    }


# -- the routes ----------------------------------------------------------------------------------
def _songs(app: FastAPI) -> SongIndex:
    songs = app.state.service.songs
    if songs is None:
        raise HTTPError(
            503,
            "no similarity index: start the server with --index FILE (made by "
            "`audiotagger similar index`) and --music-root",
        )
    return songs


def add_similarity_routes(app: FastAPI, dependencies: list, responses: dict) -> None:
    """``GET /v1/similar`` and ``GET /v1/path`` on ``app`` (``dependencies``: the token check;
    ``responses``: the documented refusals). Plain functions: FastAPI runs them in its thread
    pool, off the event loop."""
    route = {"dependencies": dependencies, "responses": responses}

    @app.get("/v1/similar", summary="Songs that sound like one song", **route)
    def similar(
        path: Annotated[
            str | None, Query(max_length=4096, description="a song below the music root")
        ] = None,
        id: Annotated[  # noqa: A002 (the parameter's public name)
            str | None, Query(max_length=64, description="a song id (16 hex digits)")
        ] = None,
        count: Annotated[
            int, Query(ge=1, le=1_000_000, description=f"songs listed (at most {MAX_SIMILAR})")
        ] = 10,
    ) -> dict[str, Any]:
        if (path is None) == (id is None):
            raise HTTPError(422, "give exactly one of the query parameters 'path' and 'id'")
        return _songs(app).similar(path or id or "", "id" if id else "path", count)

    @app.get("/v1/path", summary="A playlist walking from one song to another", **route)
    def sonic_path(
        start: Annotated[
            str, Query(alias="from", max_length=4096, description="first song: path or id")
        ],
        end: Annotated[
            str, Query(alias="to", max_length=4096, description="last song: path or id")
        ],
        count: Annotated[
            int,
            Query(ge=2, le=1_000_000, description=f"songs in the playlist (at most {MAX_PATH})"),
        ] = 25,
    ) -> dict[str, Any]:
        return _songs(app).path(start, end, count)
