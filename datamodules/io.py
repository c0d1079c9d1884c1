"""The one way this project writes a file: a reader never sees it half-written.

Every writer (manifests, caches, checkpoints, ONNX exports, reports, downloads, tags) goes through
:func:`atomic_path` or :func:`atomic_open`: the data goes to a hidden temp file in the *same*
folder (a rename across file systems would be a copy), is flushed to disk, and is renamed over the
target in one step. A crash or kill at any moment leaves either the old file or the new one, plus
at most a stale temp file that :func:`remove_stale_temps` clears.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_MARK = ".tmp"


def temp_path_for(path: str | os.PathLike) -> Path:
    """A hidden, per-process temp name beside ``path`` that keeps its extension
    (``.name.<pid>.tmp.mp3``), so writers that choose a format by extension still work."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}{TEMP_MARK}{path.suffix}")


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete temp files that killed writers of ``path`` left behind."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.stem}.*{TEMP_MARK}{path.suffix}"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _fsync_dir(folder: Path) -> None:
    # POSIX: the rename itself is durable only once the folder's entry is flushed.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path to write ``path``'s new content to; on success it replaces ``path``.

    For writers that take a file name (``np.save``, ``soundfile.write``, ONNX). On an exception
    the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode)`` whose content appears at ``path`` only when the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a whole file: mode must start with 'w', not {mode!r}")
    # The file closes before atomic_path renames it (contexts exit in reverse order).
    with atomic_path(path, fsync=False) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(Path(path).parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: object) -> Path:
    """Write ``data`` as indented JSON (newline-terminated) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks of ``block`` bytes."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
