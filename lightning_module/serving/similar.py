"""Songs that sound alike, and path playlists, over HTTP: ``GET /v1/similar``, ``GET /v1/path``.

They answer from a library index made by ``audiotagger similar index``, never by running the
model. The service is handed the index already loaded (``ServiceConfig.songs``: a
:class:`lightning_module.library.song_index.SongIndex`, built by ``audiotagger serve --index``;
serving never imports the library). A song is named by its path below the index's music root
(refused outside it, exactly as ``tag-path``) or by its id (16 hex digits, a stable hash of its
path).

Each song's ``similarity`` is ``1 - cosine_distance / 2`` = ``(1 + cos) / 2`` of the two
embeddings: 1 for the same direction, 0.5 for unrelated (orthogonal) ones, 0 for opposite ones;
``distance`` = ``cosine_distance / 2`` = ``1 - similarity`` is OpenSubsonic's normalised
``sonicMatch.distance`` (0 identical, 1 most dissimilar). docs/service.md maps the fields onto
``getSonicSimilarTracks`` and ``findSonicPath``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Query

from lightning_module.serving.limits import HTTPError, resolve_inside

#: Most songs one ``/v1/similar`` answer lists, and most songs of one ``/v1/path`` playlist;
#: a larger ``count`` is cut to these (the answer says so), as OpenSubsonic's ``count`` is "at
#: most this many".
MAX_SIMILAR = 500
MAX_PATH = 100
#: A song id: 16 lowercase hex digits (``song_index.song_id``).
ID_PATTERN = re.compile(r"[0-9a-f]{16}")
METHOD = (
    "beam search over each song's nearest neighbours and the songs near the straight A-B line, "
    "minimising the sum of squared cosine distances between consecutive songs "
    "(lightning_module/library/sonic_path.py)"
)
SIMILARITY = "1 - cosine_distance / 2 of the two songs' embeddings"


def _scores(cosine_distance: float) -> dict[str, float]:
    d = min(max(float(cosine_distance), 0.0), 2.0)
    return {
        "similarity": round(1.0 - d / 2.0, 6),
        "distance": round(d / 2.0, 6),
        "cosine_distance": round(d, 6),
    }


def _row(songs: Any, loaded: Any, ref: str, name: str) -> int:
    """The row of a song named by id or by path below the root (``name``: the parameter)."""
    if ID_PATTERN.fullmatch(ref):
        row = songs.row_of_id(loaded, ref)
        if row is None:
            raise HTTPError(404, f"{name} {ref}: no song with this id in the index")
        return row
    path = resolve_inside(songs.root, ref)  # 403 outside the root: .., symlinks, elsewhere
    row = songs.row_of_path(loaded, path)
    if row is None:
        what = "no such file" if not path.exists() else "not in the similarity index"
        raise HTTPError(404, f"{ref[:255]}: {what} (index it: audiotagger similar index)")
    return row


def _meta(songs: Any, loaded: Any, asked: int, given: int, cap: int) -> dict[str, Any]:
    return {
        "count": given,
        "count_asked": asked,
        "count_cap": cap,
        "capped": asked > cap,
        "similarity": SIMILARITY,
        "index": {"songs": len(loaded.index), **songs.model(loaded)},
    }


def similar_answer(songs: Any, ref: str, name: str, count: int) -> dict[str, Any]:
    """``count`` (at most :data:`MAX_SIMILAR`) songs nearest the song ``ref``, nearest first."""
    loaded = songs.current()
    row = _row(songs, loaded, ref, name)
    matches = [
        {"rank": rank, **songs.song(loaded, other), **_scores(distance)}
        for rank, (other, distance) in enumerate(
            songs.nearest(loaded, row, min(count, MAX_SIMILAR)), 1
        )
    ]
    return {
        "song": songs.song(loaded, row),
        **_meta(songs, loaded, count, len(matches), MAX_SIMILAR),
        "matches": matches,
    }


def path_answer(songs: Any, start: str, end: str, count: int) -> dict[str, Any]:
    """A path playlist of ``count`` songs (at most :data:`MAX_PATH`) from ``start`` to ``end``,
    in order, each scored against the first song and against the one before it."""
    loaded = songs.current()
    a, b = _row(songs, loaded, start, "from"), _row(songs, loaded, end, "to")
    if a == b:
        raise HTTPError(422, f"from and to are the same song ({start[:255]})")
    rows, steps, from_start = songs.walk(loaded, a, b, min(count, MAX_PATH))
    listed = []
    for position, row in enumerate(rows):
        step = float(steps[position - 1]) if position else None
        listed.append(
            {
                "position": position,
                **songs.song(loaded, row),
                **_scores(from_start[position]),
                "step_similarity": None if step is None else round(1.0 - step / 2.0, 6),
                "step_cosine_distance": None if step is None else round(step, 6),
            }
        )
    return {
        "from": listed[0]["id"],
        "to": listed[-1]["id"],
        **_meta(songs, loaded, count, len(listed), MAX_PATH),
        "method": METHOD,
        "steps": {
            "mean_cosine_distance": round(float(steps.mean()), 6),
            "max_cosine_distance": round(float(steps.max()), 6),
        },
        "songs": listed,
    }


# -- the routes ----------------------------------------------------------------------------------
def _songs(app: FastAPI) -> Any:
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
        return similar_answer(_songs(app), path or id or "", "id" if id else "path", count)

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
        return path_answer(_songs(app), start, end, count)
