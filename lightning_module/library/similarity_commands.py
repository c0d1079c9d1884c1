"""The `similar` command's runs: index a folder, query it, walk a path, print and write playlists.

The index and the search themselves are in :mod:`lightning_module.library.similarity`; this module
loads the model, reports progress and notes, and formats answers for a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from lightning_module.library.playlist import encoding_note, write_m3u
from lightning_module.library.similarity import (
    IndexStats,
    LibraryIndex,
    LibraryIndexError,
    Neighbour,
    Searcher,
    model_info,
    query_song,
    update_index,
)


def format_neighbours(song: str | os.PathLike, neighbours: Sequence[Neighbour]) -> str:
    """A table: rank, cosine distance, path, top genre and mood."""
    lines = [f"songs like {song}:", f"{'#':>3}  {'distance':>8}  path"]
    for rank, n in enumerate(neighbours, 1):
        tops = [f"{t[0][0]} {t[0][1]:.2f}" for task, t in n.entry.tags.items() if task != "tags"]
        extra = f"  ({', '.join(tops)})" if tops else ""
        lines.append(f"{rank:>3}  {n.distance:>8.4f}  {n.entry.path}{extra}")
    return "\n".join(lines)


def print_stats(
    stats: IndexStats, index_path: str | os.PathLike, out: IO[str] = sys.stderr
) -> None:
    """The summary lines of an index update."""
    if stats.rebuilt_reason:
        print(f"note: the old index was {stats.rebuilt_reason}", file=out)
    print(f"{stats.line()}; wrote {index_path}", file=out)


# -- the commands ------------------------------------------------------------------------------
def index_command(
    folder: str,
    out: str,
    checkpoint: str | None,
    device: str = "cpu",
    progress: bool = True,
    err: IO[str] | None = None,
) -> int:
    """``similar.py index`` without the argument parsing."""
    from lightning_module.inference.tagger import Tagger, default_model

    err = err or sys.stderr
    model_path = checkpoint or str(default_model())
    tagger = Tagger.from_file(model_path, device=device)
    info = model_info(model_path, tagger)
    for note in info["notes"]:
        print(note, file=err)
    _, stats = update_index(tagger, folder, out, info, progress, err)
    print_stats(stats, out, err)
    return 0 if not stats.failed or stats.embedded or stats.kept else 2


def query_command(
    songs: Sequence[str],
    index_path: str,
    k: int = 10,
    m3u: str | None = None,
    checkpoint: str | None = None,
    method: str = "auto",
    device: str = "cpu",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    seed: bool = True,
) -> int:
    """``similar.py query`` without the argument parsing: the nearest songs of each song; a
    song not in the index is embedded with the index's model (or ``checkpoint``).

    ``m3u``: also write a playlist (:mod:`.playlist`): each song given (unless not ``seed``)
    followed by its neighbours, no song twice. The notes about the index's model come first
    on ``err``."""
    out = out or sys.stdout
    err = err or sys.stderr
    index = LibraryIndex.load(index_path)
    tagger = None
    if any(index.position(s) is None for s in songs):
        from lightning_module.inference.tagger import Tagger

        model_path = checkpoint or index.model.get("path")
        if not model_path or not Path(model_path).is_file():
            raise LibraryIndexError(
                f"{index_path}: its model {model_path} is gone; --checkpoint embeds new songs"
            )
        tagger = Tagger.from_file(model_path, device=device)
        if model_info(model_path, tagger)["name"] != index.model.get("name"):
            raise LibraryIndexError(
                f"{model_path}: not the model the index was made with ({index.model.get('name')})"
            )
    for note in _index_notes(index, tagger):
        print(note, file=err)
    searcher_note = Searcher(index, index_path, method).method
    playlist: dict[str, None] = {}  # ordered, no song twice
    for song in songs:
        neighbours = query_song(index, song, k, index_path, tagger, method)
        print(format_neighbours(song, neighbours), file=out)
        if seed:
            playlist.setdefault(os.path.realpath(song))
        for n in neighbours:
            playlist.setdefault(n.entry.path)
    print(f"{len(index)} song(s) in the index; search: {searcher_note}", file=err)
    if m3u:
        note = encoding_note(m3u)
        print(f"wrote {write_m3u(m3u, playlist)}" + (f"\n{note}" if note else ""), file=err)
    return 0


def format_path(rows: Sequence[int], index: LibraryIndex) -> str:
    """A path playlist as a table: position, the step from the previous song (cosine
    distance), path, top genre and mood; then its mean and largest step."""
    from lightning_module.library.sonic_path import step_distances

    steps = step_distances(index.embeddings, rows)
    first, last = index.entries[rows[0]].path, index.entries[rows[-1]].path
    lines = [f"path from {first} to {last}, {len(rows)} songs:", f"{'#':>3}  {'step':>8}  path"]
    for position, row in enumerate(rows):
        entry = index.entries[row]
        tops = [f"{t[0][0]} {t[0][1]:.2f}" for task, t in entry.tags.items() if task != "tags"]
        extra = f"  ({', '.join(tops)})" if tops else ""
        step = f"{steps[position - 1]:>8.4f}" if position else f"{'-':>8}"
        lines.append(f"{position + 1:>3}  {step}  {entry.path}{extra}")
    lines.append(
        f"steps (cosine distance between consecutive songs): mean {steps.mean():.4f}, "
        f"largest {steps.max():.4f}"
    )
    return "\n".join(lines)


def path_command(
    start: str,
    end: str,
    index_path: str,
    count: int = 25,
    m3u: str | None = None,
    method: str = "auto",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``similar.py path`` without the argument parsing: a playlist of ``count`` songs walking
    from ``start`` to ``end`` (both songs of the index) in small steps
    (:class:`~.sonic_path.PathSearch`), printed and, with ``m3u``, written as a playlist."""
    from lightning_module.library.sonic_path import PathSearch

    out = out or sys.stdout
    err = err or sys.stderr
    index = LibraryIndex.load(index_path)
    rows = []
    for song in (start, end):
        row = index.position(song)
        if row is None:
            raise LibraryIndexError(
                f"{song}: not in the index {index_path} (add it: similar.py index FOLDER)"
            )
        rows.append(row)
    if rows[0] == rows[1]:
        raise LibraryIndexError(f"{start}: the path needs two different songs")
    for note in _index_notes(index, None):
        print(note, file=err)
    searcher = Searcher(index, index_path, method)
    path = PathSearch(index, searcher).find(rows[0], rows[1], count)
    print(format_path(path, index), file=out)
    if len(path) < count:
        print(f"note: the index has {len(index)} song(s): {len(path)} in the path", file=err)
    print(f"{len(index)} song(s) in the index; search: {searcher.method}", file=err)
    if m3u:
        note = encoding_note(m3u)
        songs = [index.entries[r].path for r in path]
        print(f"wrote {write_m3u(m3u, songs)}" + (f"\n{note}" if note else ""), file=err)
    return 0


def _index_notes(index: LibraryIndex, tagger: Any) -> list[str]:
    """The notes about the model of an index: from the loaded model, else as the index
    recorded them, else (an index made before notes were recorded) from its model file."""
    from lightning_module.inference.formats.text import model_notes

    if tagger is not None:
        return model_notes(tagger.spec)
    if "notes" in index.model:
        return [str(n) for n in index.model["notes"]]
    path = index.model.get("path")
    if path and Path(path).is_file():
        from lightning_module.inference.tagger import Tagger

        return model_notes(Tagger.from_file(path).spec)
    return []
