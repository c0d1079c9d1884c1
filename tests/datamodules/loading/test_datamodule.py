from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.loading.datamodule import MusicDataModule
from datamodules.loading.dataset import IGNORE_INDEX
from datamodules.manifest import FEATURES, ManifestError, read_manifest, write_manifest


def test_batches_have_shapes_masks_and_standardised_features(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    df = read_manifest(synthetic_manifest)
    df.loc[df.index[:3], "genre"] = pd.NA  # unlabelled rows: masked, not dropped
    df.loc[df.index[:5], "tempo"] = np.nan
    manifest = write_manifest(df, synthetic_manifest.parent / "masked.csv")
    dm = MusicDataModule(
        str(manifest), data_dir=str(tmp_path), num_workers=0, batch_size=6, crop_seconds=2.0
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (6, 32000) and batch["audio"].dtype == torch.float32
    assert batch["features"].shape == batch["feature_mask"].shape == (6, len(FEATURES))
    assert dm.genre_names == sorted(df["genre"].dropna().unique()) and len(dm.mood_names) == 4

    train = dm.datasets["train"]
    genres = train.targets.genre
    assert (genres == IGNORE_INDEX).sum() == df[df.split == "train"]["genre"].isna().sum()
    tempo = FEATURES.index("tempo")
    assert (~train.targets.feature_mask[:, tempo]).sum() == df[df.split == "train"][
        "tempo"
    ].isna().sum()
    z = train.targets.features[train.targets.feature_mask[:, 0], 0]
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3  # train-split standardisation


def test_eval_windows_are_fixed_and_train_crops_random(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    dm = MusicDataModule(
        str(synthetic_manifest),
        data_dir=str(tmp_path),
        num_workers=0,
        crop_seconds=1.0,
        crops_per_clip=2,
        augment=False,
    )
    dm.setup("fit")
    val = dm.datasets["val"]
    assert len(val) == 4 * len(dm.split_rows("val"))  # 4 s clips, 1 s windows
    assert torch.equal(val[1]["audio"], val[1]["audio"])
    train = dm.datasets["train"]
    assert len(train) == 2 * len(dm.split_rows("train"))
    assert not torch.equal(train[0]["audio"], train[0]["audio"])


def test_label_only_in_val_is_a_clear_error(synthetic_manifest: Path, tmp_path: Path) -> None:
    df = read_manifest(synthetic_manifest)
    row = df.index[df["split"] == "val"][0]
    df.loc[row, "genre"] = "polka"
    manifest = write_manifest(df, tmp_path / "m.csv")
    with pytest.raises(
        ManifestError, match="genre 'polka' appears in split 'val' but never in train"
    ):
        MusicDataModule(str(manifest), data_dir=str(tmp_path))


def test_unreadable_clip_is_excluded_before_training(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    df = read_manifest(synthetic_manifest)
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\xff\xfb" + b"garbage" * 100)
    df.loc[df.index[-1], "audio_path"] = str(bad)
    manifest = write_manifest(df, tmp_path / "m.csv")
    dm = MusicDataModule(str(manifest), data_dir=str(tmp_path), num_workers=0)
    dm.setup("fit")
    assert dm.cache.skipped["track_id"].tolist() == [df.iloc[-1]["track_id"]]
    assert str(bad) in dm.cache.skipped["reason"].iloc[0]
    assert sum(len(dm.split_rows(s)) for s in ("train", "val", "test")) == len(df) - 1
