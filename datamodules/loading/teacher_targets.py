"""A teacher's cached window outputs → the soft targets of any crop a student trains on.

The ``teacher`` label source (``lightning_module/teacher/outputs.py``) writes one
``teacher_outputs.npz`` per manifest: for every clip, the start of each of its teacher windows and,
per window, the teacher's probabilities (``genre``, ``mood``, ``genre_tags``, ``tags``) and its
audio features in natural units (``features``). A student crop's targets are the mean over the
teacher windows that lie inside it (a crop shorter than a window, or one no window fits in, takes
the windows it overlaps most), so every random crop gets the teacher's opinion of that stretch of
audio, computed once and never again per epoch.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUTPUTS_NAME = "teacher_outputs.npz"
#: The teacher heads a student can learn from, and how they are averaged: probabilities.
HEADS: tuple[str, ...] = ("genre", "mood", "genre_tags", "tags", "features")
#: What a crop's soft targets describe: the crop's own windows, or the whole clip.
VIEWS: tuple[str, ...] = ("crop", "clip")


class TeacherOutputsError(ValueError):
    """An unusable teacher outputs file; one line naming it."""


@dataclass
class TeacherOutputs:
    """Window outputs of every clip. ``offset`` (clips + 1,) indexes the window arrays;
    ``start`` (windows,) seconds; ``heads[name]`` (windows, len(names[name])) float32."""

    track_ids: list[str]
    offset: np.ndarray
    start: np.ndarray
    window_seconds: float
    heads: dict[str, np.ndarray]
    names: dict[str, list[str]]

    def save(self, path: str | os.PathLike) -> None:
        from datamodules.io import atomic_open

        arrays = {f"head_{k}": v.astype(np.float32) for k, v in self.heads.items()}
        arrays |= {f"names_{k}": np.asarray(v, dtype=str) for k, v in self.names.items()}
        with atomic_open(path, "wb") as f:
            np.savez(
                f,
                track_ids=np.asarray(self.track_ids, dtype=str),
                offset=self.offset,
                start=self.start,
                window_seconds=np.float32(self.window_seconds),
                **arrays,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TeacherOutputs:
        path = Path(path)
        if not path.is_file():
            raise TeacherOutputsError(
                f"{path}: teacher outputs not found (build them with "
                "`scripts/build_dataset.py teacher --manifest M --out DIR`)"
            )
        try:
            with np.load(path) as data:
                files = data.files
                value = cls(
                    track_ids=[str(t) for t in data["track_ids"]],
                    offset=data["offset"].astype(np.int64),
                    start=data["start"].astype(np.float32),
                    window_seconds=float(data["window_seconds"]),
                    heads={k[5:]: data[k] for k in files if k.startswith("head_")},
                    names={
                        k[6:]: [str(n) for n in data[k]] for k in files if k.startswith("names_")
                    },
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise TeacherOutputsError(f"{path}: not a teacher outputs file ({err})") from err
        n = int(value.offset[-1]) if len(value.offset) else -1
        bad = len(value.offset) != len(value.track_ids) + 1 or len(value.start) != n
        bad = bad or any(
            len(v) != n or v.shape[1] != len(value.names.get(k, ())) for k, v in value.heads.items()
        )
        if bad or any(not np.isfinite(v).all() for v in value.heads.values()):
            raise TeacherOutputsError(f"{path}: inconsistent or non-finite teacher outputs")
        return value

    def windows(self, track_id: str) -> slice | None:
        """The clip's window range, or None when the teacher has no outputs for it."""
        index = self._index().get(track_id)
        return None if index is None else slice(self.offset[index], self.offset[index + 1])

    def _index(self) -> dict[str, int]:
        if not hasattr(self, "_lookup"):
            self._lookup = {t: i for i, t in enumerate(self.track_ids)}
        return self._lookup

    def crop(self, track_id: str, start: float, length: float) -> dict[str, np.ndarray] | None:
        """Mean outputs of the clip's windows inside ``[start, start + length)`` seconds (else
        those overlapping it most); None when the teacher never saw the clip."""
        span = self.windows(track_id)
        if span is None:
            return None
        starts = self.start[span]
        ends = starts + self.window_seconds
        overlap = np.minimum(ends, start + length) - np.maximum(starts, start)
        inside = overlap >= self.window_seconds - 1e-3
        chosen = inside if inside.any() else overlap >= overlap.max() - 1e-3
        return {k: v[span][chosen].mean(0) for k, v in self.heads.items()}


class SoftTargets:
    """A teacher's outputs as the soft targets of a student with task ``spec``, by name.

    Per crop (:meth:`item`): ``soft_<head>`` in the student's output order and
    ``soft_<head>_mask``; genre and mood are distributions, so they are taught only when teacher
    and student have the same classes (mask one value per crop); genre tags, tags and features
    per output (features as the student's z-scores). A clip the teacher never saw is masked out.
    ``view`` ``crop``: the teacher's windows inside the crop; ``clip``: all the clip's windows.
    """

    def __init__(self, outputs: TeacherOutputs, spec, view: str = "crop") -> None:  # TaskSpec
        if view not in VIEWS:
            raise ValueError(f"teacher_view must be one of {VIEWS}, got {view!r}")
        self.outputs = outputs
        self.view = view
        self.maps: dict[
            str, tuple[np.ndarray, np.ndarray]
        ] = {}  # head → (student idx, teacher idx)
        student = {
            "genre": list(spec.genre_names),
            "mood": list(spec.mood_names),
            "genre_tags": list(getattr(spec, "genre_tag_names", [])),
            "tags": list(spec.tag_names),
            "features": list(spec.feature_names),
        }
        self.sizes = {k: len(v) for k, v in student.items()}
        for head, names in student.items():
            teacher = outputs.names.get(head)
            if not names or teacher is None or head not in outputs.heads:
                continue
            if head in ("genre", "mood") and sorted(teacher) != sorted(names):
                continue  # a distribution over other classes teaches nothing about these
            pairs = [(i, teacher.index(n)) for i, n in enumerate(names) if n in teacher]
            if pairs:
                s, t = (np.asarray(p, np.int64) for p in zip(*pairs, strict=True))
                self.maps[head] = (s, t)
        self.mean = np.asarray(spec.feature_mean, np.float32)
        self.std = np.asarray(spec.feature_std, np.float32)

    @property
    def heads(self) -> list[str]:
        """The student heads the teacher teaches."""
        return list(self.maps)

    def item(self, track_id: str, start: float, length: float) -> dict:
        """Soft targets of the crop ``[start, start + length)`` seconds of ``track_id``."""
        import torch

        if self.view == "clip":  # every window of the clip lies inside [0, inf)
            start, length = 0.0, float("inf")
        crop = self.outputs.crop(track_id, start, length)
        item = {}
        for head, size in self.sizes.items():
            target = np.zeros(size, np.float32)
            mask = np.zeros(size, bool)
            if crop is not None and head in self.maps:
                s, t = self.maps[head]
                values = crop[head][t]
                if head == "features":
                    values = (values - self.mean[s]) / self.std[s]
                target[s], mask[s] = values, True
            if head in ("genre", "mood"):
                mask = np.asarray(mask.all() and bool(size))  # one flag: the whole distribution
            item[f"soft_{head}"] = torch.from_numpy(target)
            item[f"soft_{head}_mask"] = torch.from_numpy(mask)
        return item
