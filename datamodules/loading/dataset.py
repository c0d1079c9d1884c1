"""Manifest rows + the audio cache → training examples: crops, targets, masks, augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from datamodules.analysis.key import parse_key
from datamodules.audio import window_starts
from datamodules.loading.cache import AudioCache
from datamodules.loading.teacher_targets import SoftTargets
from datamodules.manifest import GENRE_TAG_PREFIX
from datamodules.schema import IGNORE_INDEX, TaskSpec, spread_evenly  # noqa: F401 (TaskSpec re-exported)


@dataclass
class Targets:
    """Per-row targets as arrays, built once from the manifest."""

    genre: np.ndarray  # (N,) int64, IGNORE_INDEX where missing
    mood: np.ndarray  # (N,) int64
    features: np.ndarray  # (N, F) float32, standardised, 0 where missing
    feature_mask: np.ndarray  # (N, F) bool
    tags: np.ndarray  # (N, K) float32 in [0, 1], 0 where missing
    tag_mask: np.ndarray  # (N, K) bool
    # Multi-label genre tags (genre_tag_<name>): hard 0/1; a row without genre tags is all False.
    genre_tags: np.ndarray  # (N, T) float32 in {0, 1}, 0 where missing
    genre_tag_mask: np.ndarray  # (N, T) bool
    # The key: index mode * 12 + tonic (datamodules.analysis.key), IGNORE_INDEX where missing.
    key: np.ndarray | None = None  # (N,) int64

    @classmethod
    def from_manifest(cls, df: pd.DataFrame, spec: TaskSpec) -> Targets:
        def classes(column: str, names: list[str]) -> np.ndarray:
            lookup = {name: i for i, name in enumerate(names)}
            values = df[column] if column in df else pd.Series([pd.NA] * len(df))
            return np.array(
                [lookup.get(v, IGNORE_INDEX) if not pd.isna(v) else IGNORE_INDEX for v in values],
                dtype=np.int64,
            )

        raw = (
            df[spec.feature_names].to_numpy(dtype=np.float64)
            if spec.feature_names
            else np.zeros((len(df), 0))
        )
        feature_mask = np.isfinite(raw)
        standard = (raw - np.asarray(spec.feature_mean)) / np.asarray(spec.feature_std)
        # A tag without a column (taught only by a teacher's soft targets) has no hard target.
        tags = (
            np.stack(
                [
                    pd.to_numeric(df[f"tag_{t}"], errors="coerce").to_numpy(np.float64)
                    if f"tag_{t}" in df
                    else np.full(len(df), np.nan)
                    for t in spec.tag_names
                ],
                axis=1,
            )
            if spec.tag_names
            else np.zeros((len(df), 0))
        )
        tag_mask = np.isfinite(tags)
        genre_tags, genre_tag_mask = _genre_tag_targets(df, spec)
        return cls(
            genre=classes("genre", spec.genre_names),
            mood=classes("mood", spec.mood_names),
            features=np.where(feature_mask, standard, 0.0).astype(np.float32),
            feature_mask=feature_mask,
            tags=np.where(tag_mask, tags, 0.0).astype(np.float32),
            tag_mask=tag_mask,
            genre_tags=genre_tags,
            genre_tag_mask=genre_tag_mask,
            key=_key_targets(df) if spec.key_names else None,
        )

    def item(self, row: int) -> dict[str, torch.Tensor]:
        return {
            "genre": torch.tensor(self.genre[row]),
            "mood": torch.tensor(self.mood[row]),
            "features": torch.from_numpy(self.features[row]),
            "feature_mask": torch.from_numpy(self.feature_mask[row]),
            "tags": torch.from_numpy(self.tags[row]),
            "tag_mask": torch.from_numpy(self.tag_mask[row]),
            "genre_tags": torch.from_numpy(self.genre_tags[row]),
            "genre_tag_mask": torch.from_numpy(self.genre_tag_mask[row]),
            **({"key": torch.tensor(self.key[row])} if self.key is not None else {}),
        }


def _key_targets(df: pd.DataFrame) -> np.ndarray:
    """(N,) key indices from the ``key`` (tonic, or a full key such as ``A minor``) and ``mode``
    columns; IGNORE_INDEX where empty.

    Raises:
        ValueError: a value that is not a key (names the row's track id).
    """
    keys = df["key"] if "key" in df else pd.Series([pd.NA] * len(df), index=df.index)
    modes = df["mode"] if "mode" in df else pd.Series([pd.NA] * len(df), index=df.index)
    out = np.full(len(df), IGNORE_INDEX, dtype=np.int64)
    for i, (key, mode) in enumerate(zip(keys, modes, strict=True)):
        if pd.isna(key) or str(key).strip() == "":
            continue
        text = f"{key} {mode}" if not pd.isna(mode) and str(mode).strip() else str(key)
        try:
            out[i] = parse_key(text)
        except ValueError as err:
            track = df["track_id"].iloc[i] if "track_id" in df else i
            raise ValueError(f"manifest row {track}: key: {err}") from err
    return out


def _genre_tag_targets(df: pd.DataFrame, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) hard 0/1 genre-tag targets and their mask, T = ``spec.genre_tag_names``; a row
    whose ``genre_tag_<name>`` values are empty (no genre tags: GTZAN, Emotify) is fully masked."""
    names = [f"{GENRE_TAG_PREFIX}{t}" for t in spec.genre_tag_names]
    values = np.full((len(df), len(names)), np.nan)
    for j, column in enumerate(names):
        if column in df:
            values[:, j] = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
    mask = np.isfinite(values)
    return np.where(mask, values >= 0.5, False).astype(np.float32), mask


class CropDataset(Dataset):
    """Fixed-length crops of cached clips with their targets.

    Training (``random_crops=True``): each of ``crops_per_clip`` items per clip is a fresh random
    crop, so one epoch sees every clip several times at different positions. Evaluation: fixed
    windows every ``hop`` samples (at most ``max_windows`` per clip, evenly spread), identical every
    epoch.

    Items are dicts: ``audio`` (samples,) float32, ``row`` (index into the manifest), the targets
    of :class:`Targets` and, with ``soft_targets``, the teacher's soft targets of the crop.
    """

    def __init__(
        self,
        track_ids: Sequence[str],
        targets: Targets,
        cache: AudioCache,
        crop_samples: int,
        random_crops: bool,
        crops_per_clip: int = 1,
        hop: int | None = None,
        max_windows: int = 8,
        augment: Callable[[np.ndarray, int], np.ndarray] | None = None,
        soft_targets: SoftTargets | None = None,
    ) -> None:
        self.track_ids = list(track_ids)
        self.soft_targets = soft_targets
        self.targets = targets
        self.cache = cache
        self.crop_samples = crop_samples
        self.random_crops = random_crops
        self.augment = augment
        if random_crops:
            self.items = [
                (row, -1) for row in range(len(self.track_ids)) for _ in range(crops_per_clip)
            ]
        else:
            self.items = []
            for row, track_id in enumerate(self.track_ids):
                starts = window_starts(cache.length(track_id), crop_samples, hop or crop_samples)
                starts = [starts[i] for i in spread_evenly(len(starts), max_windows)]
                self.items.extend((row, s) for s in starts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row, start = self.items[index]
        track_id = self.track_ids[row]
        if start < 0:
            slack = max(self.cache.length(track_id) - self.crop_samples, 0)
            start = int(torch.randint(0, slack + 1, ()))  # torch RNG is seeded per worker
        audio = self.cache.read(track_id, start, self.crop_samples)
        if len(audio) < self.crop_samples:
            audio = np.pad(audio, (0, self.crop_samples - len(audio)))
        if self.augment is not None:
            audio = self.augment(audio, self.cache.sample_rate).astype(np.float32, copy=False)
        item = {
            "audio": torch.from_numpy(np.ascontiguousarray(audio)),
            "row": torch.tensor(row),
            **self.targets.item(row),
        }
        if self.soft_targets is not None:  # the teacher's view of exactly this crop
            rate = self.cache.sample_rate
            item |= self.soft_targets.item(track_id, start / rate, self.crop_samples / rate)
        return item
