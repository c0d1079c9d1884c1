"""Extended M3U playlists of songs found by :mod:`.similarity`: the seed song first, then its
neighbours, each with a real ``#EXTINF:<seconds>,<artist> - <title>`` line read from the file.

The playlist is always UTF-8 (file names and tags are Unicode). Its name says so by the
``.m3u8`` suffix, which every player that reads playlists takes as UTF-8; a bare ``.m3u`` is, by
the format's history (Winamp), read by some players in the system's legacy encoding, so a
``.m3u`` name is still written as UTF-8 but reported (:func:`encoding_note`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from datamodules.io import write_text_atomic

#: Suffixes a playlist may have; a name without one gets the first.
SUFFIXES = (".m3u8", ".m3u")


def playlist_path(name: str | os.PathLike) -> Path:
    """``name`` as a playlist file: ``like_song`` → ``like_song.m3u8``; ``.m3u8`` and ``.m3u``
    names are kept.

    Raises:
        ValueError: another suffix (``.pls``, ``.txt``: not an M3U playlist), one line.
    """
    path = Path(name)
    suffix = path.suffix.lower()
    if not suffix:
        return path.with_name(path.name + SUFFIXES[0])
    if suffix not in SUFFIXES:
        raise ValueError(f"{name}: a playlist is written as .m3u8 (or .m3u), not {path.suffix}")
    return path


def encoding_note(path: str | os.PathLike) -> str | None:
    """The note a ``.m3u`` name deserves (None for ``.m3u8``)."""
    if Path(path).suffix.lower() == ".m3u":
        return (
            f"note: {path} is written as UTF-8; players that read .m3u as Latin-1 may garble "
            "non-ASCII names (name it .m3u8 to say it is UTF-8)"
        )
    return None


def _one_line(texts: Iterable[object]) -> str:
    # a newline inside a tag would start a new playlist line: never let one through
    return ", ".join(" ".join(str(t).split()) for t in texts if str(t).strip())


def track_tags(path: str | os.PathLike) -> tuple[int, str, str]:
    """``(seconds, artist, title)`` of an audio file: the duration rounded to whole seconds (-1,
    M3U's "unknown", when mutagen cannot read it) and the artist and title from its tags, each on
    one line ("" when missing)."""
    import mutagen

    seconds, artist, title = -1, "", ""
    try:
        audio = mutagen.File(path, easy=True)
    except Exception:  # mutagen.MutagenError and the parsers' own errors: no tags to show
        audio = None
    if audio is not None:
        length = getattr(audio.info, "length", 0) or 0
        if length > 0:
            seconds = int(round(length))
        tags = audio.tags
        if tags is not None and hasattr(tags, "getall"):  # ID3 in WAVE/AIFF: no easy view
            artist = _one_line(tags["TPE1"].text) if "TPE1" in tags else ""
            title = _one_line(tags["TIT2"].text) if "TIT2" in tags else ""
        elif tags is not None:  # EasyID3, EasyMP4, Vorbis comments: "artist", "title"
            artist = _one_line(tags.get("artist") or [])
            title = _one_line(tags.get("title") or [])
    return seconds, artist, title


def track_info(path: str | os.PathLike) -> tuple[int, str]:
    """``(seconds, "Artist - Title")`` of an audio file for its ``#EXTINF`` line
    (:func:`track_tags`); a missing title is the file stem, a missing artist left out."""
    seconds, artist, title = track_tags(path)
    title = title or Path(path).stem
    return seconds, f"{artist} - {title}" if artist else title


def write_m3u(path: str | os.PathLike, songs: Iterable[str | os.PathLike]) -> Path:
    """An extended M3U playlist of ``songs`` in order (paths relative to the playlist's folder
    when they are below it, else absolute), UTF-8, written atomically; returns its path."""
    path = Path(path)
    folder = path.resolve().parent
    lines = ["#EXTM3U"]
    for song in songs:
        song = Path(song)
        try:
            shown = str(song.relative_to(folder))
        except ValueError:
            shown = str(song)
        seconds, name = track_info(song)
        lines += [f"#EXTINF:{seconds},{name}", shown]
    return write_text_atomic(path, "\n".join(lines) + "\n")
