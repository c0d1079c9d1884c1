"""``MusicDataModule``: one manifest in, train/val/test loaders of fixed-length crops out."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from filelock import FileLock
from torch.utils.data import DataLoader

from datamodules.analysis.key import KEY_NAMES
from datamodules.loading.augmentation import label_preserving_augment
from datamodules.loading.cache import AudioCache, build_cache
from datamodules.loading.dataset import CropDataset, Targets, TaskSpec
from datamodules.loading.teacher_targets import SoftTargets, TeacherOutputs, TeacherOutputsError
from datamodules.manifest import (
    FEATURES,
    GENRE_TAG_PREFIX,
    ManifestError,
    feature_provenance,
    genre_tag_columns,
    label_names,
    read_manifest,
    tag_columns,
)
from datamodules.schema import DEFAULT_CROP_SECONDS
from datamodules.synthetic import ensure_synthetic

log = logging.getLogger(__name__)

#: Standard deviations below this are floored, so a constant feature cannot blow up its z-score.
MIN_FEATURE_STD = 1e-3


def frequent_genre_tags(train: pd.DataFrame, min_count: int) -> list[str]:
    """Genre tags (``genre_tag_<name>`` columns) with at least ``min_count`` positive and one
    negative train row, sorted by name: a tag no train row lacks (or almost none has) cannot be
    learnt."""
    names = []
    for column in genre_tag_columns(train.columns):
        values = pd.to_numeric(train[column], errors="coerce").dropna()
        if (values >= 0.5).sum() >= min_count and (values < 0.5).sum() >= 1:
            names.append(column.removeprefix(GENRE_TAG_PREFIX))
    return sorted(names)


def feature_statistics(train: pd.DataFrame, names: list[str]) -> tuple[list[float], list[float]]:
    """Mean and std (floored) of each feature over the rows that have it; (0, 1) when none do."""
    means, stds = [], []
    for name in names:
        values = pd.to_numeric(train[name], errors="coerce").dropna().to_numpy(np.float64)
        if len(values) == 0:
            means.append(0.0)
            stds.append(1.0)
        else:
            means.append(float(values.mean()))
            stds.append(float(max(values.std(), MIN_FEATURE_STD)))
    return means, stds


class MusicDataModule(pl.LightningDataModule):
    """Reads a manifest (or makes the synthetic one) and serves crops from the decoded-audio cache.

    Args:
        manifest: path to ``manifest.csv``; ``None`` uses the embedded synthetic dataset.
        data_dir: where the synthetic dataset and the audio cache live (git-ignored).
        cache_dir: audio cache folder; default ``<data_dir>/cache``.
        synthetic_clips_per_class: clips per (genre, mood) pair of the synthetic dataset.
        synthetic_duration: seconds per synthetic clip.
        synthetic_seed: seed of the synthetic dataset.
        sample_rate: model sample rate in Hz; audio is decoded and resampled to it once.
        crop_seconds: length of every training/evaluation crop in seconds.
        crops_per_clip: random crops per training clip per epoch.
        eval_hop_seconds: hop between evaluation windows (default: ``crop_seconds``).
        max_eval_windows: cap on evaluation windows per clip (evenly spread).
        batch_size: crops per batch.
        num_workers: DataLoader worker processes (``None``: one per core, at most 8; reading a
            crop from the cache is cheap, the waveform augmentation is what needs them).
        pin_memory: pin host memory (``None``: when CUDA is available).
        persistent_workers: keep workers alive between epochs.
        prefetch_factor: batches prefetched per worker.
        augment: label-preserving waveform augmentation on the train split.
        decode_workers: threads used to build the cache (``None``: up to 8).
        max_clip_seconds: keep at most this many seconds of each clip in the cache (``None``: all),
            so one hour-long file cannot fill the disk.
        min_genre_tag_count: a ``genre_tag_<name>`` column becomes an output of the genre-tag head
            when at least this many train rows have the tag (and at least one lacks it).
        teacher_outputs: a ``teacher_outputs.npz`` of the ``teacher`` label source: every crop
            then also carries the teacher's soft targets of that stretch of audio (distillation,
            ``--model.distill_weight``); a student without a tag head gets one for the teacher's
            tags.
        teacher_view: what the teacher says about a training crop: ``crop``, the mean of its
            windows inside that crop (what the crop itself sounds like); ``clip``, the mean of
            all the clip's windows (one target per clip, whatever stretch was cropped).
        refit: train on every row (train + val + test): the shipped model, once the recipe was
            chosen on val. The label names and feature statistics come from all rows; val stays
            as a (no longer held-out) progress check and there is no test split.
    """

    def __init__(
        self,
        manifest: str | None = None,
        data_dir: str = "data",
        cache_dir: str | None = None,
        synthetic_clips_per_class: int = 20,
        synthetic_duration: float = 8.0,
        synthetic_seed: int = 0,
        sample_rate: int = 16000,
        crop_seconds: float = DEFAULT_CROP_SECONDS,
        crops_per_clip: int = 4,
        eval_hop_seconds: float | None = None,
        max_eval_windows: int = 8,
        batch_size: int = 32,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        augment: bool = True,
        decode_workers: int | None = None,
        max_clip_seconds: float | None = 600.0,
        min_genre_tag_count: int = 5,
        teacher_outputs: str | None = None,
        teacher_view: Literal["crop", "clip"] = "crop",
        refit: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        if manifest is None:
            synthetic_dir = self.data_dir / "synthetic"
            synthetic_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(str(synthetic_dir / ".lock")):  # DDP ranks / parallel runs generate once
                manifest = str(
                    ensure_synthetic(
                        synthetic_dir,
                        clips_per_class=synthetic_clips_per_class,
                        duration=synthetic_duration,
                        seed=synthetic_seed,
                    )
                )
        self.manifest_path = Path(manifest)
        # Missing or unreadable audio does not stop the run: the cache excludes those rows and
        # lists them, with the reason, before training starts.
        self.manifest = read_manifest(self.manifest_path, check_audio=False)
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / "cache"
        try:
            self.teacher = TeacherOutputs.load(teacher_outputs) if teacher_outputs else None
        except TeacherOutputsError as err:
            raise ManifestError(str(err)) from err
        self.task = self._task_spec(self.manifest)
        self.cache: AudioCache | None = None
        self.datasets: dict[str, CropDataset] = {}

    # -- task spec, linked into the model's init arguments by the CLI -----------------------------
    def _task_spec(self, df: pd.DataFrame) -> TaskSpec:
        if self.hparams.refit:  # every row trains: names and statistics come from all of them
            df = df.assign(split="train")
        train = df[df["split"] == "train"]
        if train.empty:
            raise ManifestError(f"{self.manifest_path}: the train split is empty")
        spec = TaskSpec(
            genre_names=label_names(df, "genre"),
            mood_names=label_names(df, "mood"),
            feature_names=list(FEATURES),
            tag_names=[c.removeprefix("tag_") for c in tag_columns(df.columns)],
        )
        if not spec.tag_names and self.teacher is not None:
            spec.tag_names = list(self.teacher.names.get("tags", []))
        spec.feature_mean, spec.feature_std = feature_statistics(train, spec.feature_names)
        spec.feature_sources = [
            {k: int(v) for k, v in feature_provenance(train, f).value_counts().items()}
            if f in train
            else {}
            for f in spec.feature_names
        ]
        sources = train["source"].fillna("unknown") if "source" in train else pd.Series(dtype=str)
        spec.train_sources = {str(k): int(v) for k, v in sources.value_counts().items()}
        # Multi-label genre tags (genre-tag head): frequent enough in train to learn.
        spec.genre_tag_names = frequent_genre_tags(train, self.hparams.min_genre_tag_count)
        # The key head: any labelled key in train (the head is pitch-equivariant, so a few
        # clips teach all 24 keys).
        if "key" in train and train["key"].notna().any():
            spec.key_names = list(KEY_NAMES)
        for column, names in (("genre", spec.genre_names), ("mood", spec.mood_names)):
            unknown = df[df[column].notna() & ~df[column].isin(names)]
            if not unknown.empty:
                row = unknown.index[0]
                raise ManifestError(
                    f"{self.manifest_path}: line {row + 2} (track_id {df.at[row, 'track_id']}): "
                    f"{column} {df.at[row, column]!r} appears in split {df.at[row, 'split']!r} "
                    "but never in train"
                )
        return spec

    @property
    def genre_names(self) -> list[str]:
        return self.task.genre_names

    @property
    def mood_names(self) -> list[str]:
        return self.task.mood_names

    @property
    def feature_names(self) -> list[str]:
        return self.task.feature_names

    @property
    def feature_mean(self) -> list[float]:
        return self.task.feature_mean

    @property
    def feature_std(self) -> list[float]:
        return self.task.feature_std

    @property
    def tag_names(self) -> list[str]:
        return self.task.tag_names

    @property
    def feature_sources(self) -> list[dict[str, int]]:
        return self.task.feature_sources

    @property
    def train_sources(self) -> dict[str, int]:
        return self.task.train_sources

    @property
    def genre_tag_names(self) -> list[str]:
        return self.task.genre_tag_names

    @property
    def key_names(self) -> list[str]:
        return self.task.key_names

    # -- data -------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Decode once (rank 0 only); other ranks find the finished cache under the same lock."""
        self._build_cache()

    def _build_cache(self) -> AudioCache:
        if self.cache is None:
            self.cache = build_cache(
                self.manifest,
                self.cache_dir,
                self.hparams.sample_rate,
                num_workers=self.hparams.decode_workers,
                max_seconds=self.hparams.max_clip_seconds,
            )
            if len(self.cache.skipped):
                lines = "\n".join(
                    f"  {r.track_id}: {r.reason}" for r in self.cache.skipped.itertuples()
                )
                log.warning(
                    "excluded %d unreadable clip(s) before training:\n%s",
                    len(self.cache.skipped),
                    lines,
                )
        return self.cache

    def setup(self, stage: str | None = None) -> None:
        cache = self._build_cache()
        hp = self.hparams
        crop = int(round(hp.crop_seconds * hp.sample_rate))
        hop = int(round((hp.eval_hop_seconds or hp.crop_seconds) * hp.sample_rate))
        usable = self.manifest[self.manifest["track_id"].isin(cache.offsets.keys())].reset_index(
            drop=True
        )
        self.usable = usable
        augment = label_preserving_augment() if hp.augment else None
        soft = (
            SoftTargets(self.teacher, self.task, hp.teacher_view)
            if self.teacher is not None
            else None
        )
        for split in ("train", "val", "test"):
            rows = self._split_rows(usable, split)
            if rows.empty:
                continue
            self.datasets[split] = CropDataset(
                rows["track_id"].tolist(),
                Targets.from_manifest(rows, self.task),
                cache,
                crop_samples=crop,
                random_crops=split == "train",
                crops_per_clip=hp.crops_per_clip,
                hop=hop,
                max_windows=hp.max_eval_windows,
                augment=augment if split == "train" else None,
                soft_targets=soft,
            )
        if "train" not in self.datasets:
            raise ManifestError(f"{self.manifest_path}: no decodable clip in the train split")

    def _split_rows(self, usable: pd.DataFrame, split: str) -> pd.DataFrame:
        if self.hparams.refit and split != "val":  # refit: all rows train, none left to test
            return usable.reset_index(drop=True) if split == "train" else usable.iloc[:0]
        return usable[usable["split"] == split].reset_index(drop=True)

    def split_rows(self, split: str) -> pd.DataFrame:
        """Manifest rows of ``split`` that decoded (the order the split's dataset uses)."""
        return self._split_rows(self.usable, split)

    @property
    def loader_workers(self) -> int:
        """DataLoader workers in use: ``num_workers``, or one per core (at most 8) when ``None``."""
        workers = self.hparams.num_workers
        return workers if workers is not None else min(8, os.cpu_count() or 1)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        workers = self.loader_workers
        return DataLoader(
            self.datasets[split],
            batch_size=hp.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[split]) > hp.batch_size,
            num_workers=workers,
            pin_memory=torch.cuda.is_available() if hp.pin_memory is None else hp.pin_memory,
            persistent_workers=hp.persistent_workers and workers > 0,
            prefetch_factor=hp.prefetch_factor if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False) if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", shuffle=False) if "test" in self.datasets else []

    def __repr__(self) -> str:
        return f"MusicDataModule({self.manifest_path}, {len(self.manifest)} rows)"
