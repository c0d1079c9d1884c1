"""Checkpoint writing that a kill cannot corrupt.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file lives
in the system temp folder and is then ``shutil.move``d next to the checkpoints. When that folder is
on another file system (``/tmp`` on tmpfs, checkpoints on a data disk) the move is a copy, and a
kill during the copy leaves a truncated ``last.ckpt``, the only way to resume. A kill also leaves
the full-size temp file behind in ``/tmp``.

:class:`AtomicCheckpointIO` writes to a temporary file in the checkpoint's own folder, flushes it
to disk and renames it over the target, which POSIX makes atomic: a reader (or a resumed run) sees
either the previous checkpoint or the new one, never a mix. Wired in by ``configs/*.yaml`` under
``trainer.plugins``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

TEMP_SUFFIX = ".partial"


def temp_path_for(path: str | os.PathLike) -> Path:
    """Where the next version of ``path`` is written before the rename (hidden, same folder)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of writers that were killed mid-save; only one process writes a given path.
    for stale in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # Make the rename itself durable (POSIX: the directory entry lives in the folder).
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` for local folders whose saves are atomic (see the module docstring).

    Remote URLs (``s3://``...) fall back to Lightning's fsspec path, which uploads whole objects.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)
