"""One skeleton for a teacher's pass over a manifest's clips, and the per-clip caches it reads.

A teacher that labels a manifest (the ``features`` analysers in
:mod:`datamodules.sources.feature_teacher`, musicnn's tags in
:mod:`lightning_module.teacher.labelling`, the accurate teacher's window features in
:mod:`lightning_module.teacher.outputs`, the frozen-musicnn probe's descriptors) computes one or
more values per audio file. :func:`teacher_pass` does, the same way for all of them, per clip:

1. read every value from its cache (one file per clip and value, keyed on the audio file and the
   teacher's version: :func:`datamodules.builds.file_key`);
2. when any is missing, decode the audio once, compute the missing values and store each
   atomically (an interrupted run resumes without recomputing what it finished);
3. count what was computed and what was cached; audio that is missing or cannot be decoded is
   left out with a one-line reason (a :class:`~datamodules.builds.Skip`, reason ``bad audio``).

The teacher then writes its manifest, ``skipped.csv`` and ``summary.json`` from the result.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from tqdm.auto import tqdm

from datamodules.audio import AudioError
from datamodules.builds import Skip, file_key
from datamodules.io import atomic_open

V = TypeVar("V")
Wave = TypeVar("Wave")


class FileCache(Generic[V]):
    """Per-clip values in one folder: one file per audio file, named by
    ``file_key(audio, *parts)`` (changes when the file or the teacher's ``parts`` change),
    written atomically. Subclasses say how a value is read, written and checked."""

    suffix = ".json"

    def __init__(self, folder: str | os.PathLike, *parts: object) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts = parts

    def path(self, audio: str | os.PathLike) -> Path:
        return self.folder / f"{file_key(audio, *self.parts)}{self.suffix}"

    def get(self, audio: str | os.PathLike) -> V | None:
        """The cached value, or None when absent, unreadable or invalid (then it is recomputed)."""
        try:
            with open(self.path(audio), "rb") as f:
                value = self.read(f)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return value if self.valid(value) else None

    def put(self, audio: str | os.PathLike, value: V) -> V:
        """Store ``value``; returns it as stored (:meth:`prepare`), which is what a later
        :meth:`get` returns, so a first run and a rerun from the cache compute the same."""
        value = self.prepare(value)
        with atomic_open(self.path(audio), "wb") as f:
            self.write(f, value)
        return value

    def prepare(self, value: V) -> V:
        """``value`` as it is stored (e.g. a smaller dtype)."""
        return value

    def read(self, f: IO[bytes]) -> V:
        return json.load(f)

    def write(self, f: IO[bytes], value: V) -> None:
        f.write((json.dumps(value, indent=2) + "\n").encode())

    def valid(self, value: V) -> bool:
        """Whether a value read back is usable (else it is recomputed)."""
        return True


class ClipCache(FileCache[dict[str, Any]]):
    """JSON mappings per clip (the ``features`` analysers' values and reasons)."""

    def valid(self, value: dict[str, Any]) -> bool:
        return isinstance(value, dict)


@dataclass
class PassResult(Generic[V]):
    """What :func:`teacher_pass` found.

    Attributes:
        values: per clip key (in input order), its value under each cache name; only clips whose
            values are all there (cached or computed).
        skips: clips left out (missing or undecodable audio), one line each.
        computed, cached: per cache name, how many values were computed / read from the cache.
        clips_computed, clips_cached: clips that needed the audio / that were wholly cached.
    """

    values: dict[Hashable, dict[str, V]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    computed: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    clips_computed: int = 0
    clips_cached: int = 0


def teacher_pass(
    clips: Iterable[tuple[Hashable, str | os.PathLike]],
    caches: Mapping[str, FileCache[V]],
    decode: Callable[[Path], Wave],
    compute: Callable[[str, Wave], V],
    desc: str,
    progress: bool = True,
) -> PassResult[V]:
    """Every value of every clip, from its cache or computed (see the module doc).

    Args:
        clips: (key, audio file) pairs; the key names the clip in the result and its skip.
        caches: one cache per value a clip gets, by name (anything with ``get(audio)`` and
            ``put(audio, value) -> value``).
        decode: audio file → what ``compute`` reads (e.g. a (samples,) waveform); called at most
            once per clip, and only when a value is missing. ``AudioError`` skips the clip.
        compute: (cache name, decoded audio) → the value to store under that name.
        desc: the progress bar's label.
        progress: show a tqdm progress bar.
    """
    result: PassResult[V] = PassResult()
    for key, audio in tqdm(list(clips), desc=desc, unit="clip", disable=not progress):
        audio = Path(audio)
        try:
            if not audio.is_file():
                raise AudioError(f"{audio}: file not found")
            clip = {name: cache.get(audio) for name, cache in caches.items()}
            missing = [name for name, value in clip.items() if value is None]
            if missing:
                wave = decode(audio)
                for name in missing:
                    clip[name] = caches[name].put(audio, compute(name, wave))
        except AudioError as err:
            result.skips.append(Skip(str(key), "bad audio", str(err), str(audio)))
            continue
        for name in clip:
            counts = result.computed if name in missing else result.cached
            counts[name] = counts.get(name, 0) + 1
        result.clips_computed += bool(missing)
        result.clips_cached += not missing
        result.values[key] = clip
    return result
