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

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from datamodules.io import TEMP_MARK, atomic_open, remove_stale_temps

__all__ = ["TEMP_MARK", "AtomicCheckpointIO", "atomic_torch_save"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (same-folder temp, fsync, rename)."""
    # Leftovers of writers that were killed mid-save; only one process writes a given path.
    remove_stale_temps(path)
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


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
