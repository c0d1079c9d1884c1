"""Listing a music library: every file below a folder, sorted into audio, not audio (covers, cue
sheets, playlists, hidden files, by kind) and unreadable, without decoding anything."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datamodules.audio import AudioError, classify_path


@dataclass
class Listing:
    """Every file below a folder, by what its name says (each list sorted)."""

    audio: list[Path] = field(default_factory=list)
    #: files whose extension is neither audio nor sidecar: skipped, never opened
    unknown: list[Path] = field(default_factory=list)
    #: (folder, reason) for each folder that could not be listed
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    #: kind → count: ``sidecar``, ``hidden`` (files and folders), ``output`` (the table itself),
    #: ``linked twice`` (a second link to a folder already listed)
    not_audio: Counter[str] = field(default_factory=Counter)


def list_library(folder: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> Listing:
    """List ``folder`` recursively (see the module docstring); ``exclude`` names files that are
    never candidates (the table being written and its state, when they live in the folder).

    Raises:
        AudioError: ``folder`` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise AudioError(f"{root}: no audio files (not a folder)")
    excluded = {os.path.realpath(p) for p in exclude}
    excluded_names = {Path(p).name for p in exclude}
    listing = Listing()
    seen: set[str] = set()

    def unreadable(err: OSError) -> None:
        listing.unreadable.append((Path(err.filename), f"cannot list folder ({err.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop, or a second link to a folder already listed
            listing.not_audio["linked twice"] += 1
            dirnames[:] = []
            continue
        seen.add(real)
        if hidden := sum(d.startswith(".") for d in dirnames):  # not descended into
            listing.not_audio["hidden"] += hidden
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if name in excluded_names and os.path.realpath(path) in excluded:
                listing.not_audio["output"] += 1
                continue
            kind = classify_path(path)
            if kind == "audio":
                listing.audio.append(path)
            elif kind == "unknown":
                listing.unknown.append(path)
            else:
                listing.not_audio[kind] += 1
    listing.audio.sort()
    listing.unknown.sort()
    listing.unreadable.sort()
    return listing


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, by name: :func:`list_library`), sorted;
    hidden files and folders left out."""
    return list_library(folder).audio


def _unknown_format(path: Path) -> str:
    suffix = path.suffix
    what = f"'{suffix}' is not an audio extension" if suffix else "no extension"
    return f"{path}: unknown format ({what}; not opened, rename it if it is audio)"


# -- the report -----------------------------------------------------------------------------------
