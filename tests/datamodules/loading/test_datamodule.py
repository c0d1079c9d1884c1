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


def test_genre_tags_become_outputs_when_frequent_with_masked_rows(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    df = read_manifest(synthetic_manifest)
    train = (df["split"] == "train").to_numpy()
    has_tags = np.arange(len(df)) % 4 != 0  # every 4th row has no genre tags (like GTZAN)
    columns = {
        "genre_tag_Pop/Rock": (df["genre"] == "rock").to_numpy(float),
        "genre_tag_R&B": (df["mood"] != "sad").to_numpy(float),
        "genre_tag_Rare": np.zeros(len(df)),  # 2 positives in train: below min_genre_tag_count
        "genre_tag_Always": np.ones(len(df)),  # no negative in train: nothing to learn
    }
    columns["genre_tag_Rare"][np.flatnonzero(train & has_tags)[:2]] = 1.0
    for name, values in columns.items():
        df[name] = np.where(has_tags, values, np.nan)
    manifest = write_manifest(df, tmp_path / "tagged.csv")
    dm = MusicDataModule(
        str(manifest), data_dir=str(tmp_path), num_workers=0, batch_size=6, crop_seconds=2.0
    )
    assert dm.genre_tag_names == ["Pop/Rock", "R&B"] == dm.task.genre_tag_names
    assert dm.tag_names == []  # genre_tag_ columns are not teacher tags
    assert MusicDataModule(
        str(manifest), data_dir=str(tmp_path), min_genre_tag_count=2
    ).genre_tag_names == ["Pop/Rock", "R&B", "Rare"]
    dm.setup("fit")
    targets = dm.datasets["train"].targets
    rows = dm.split_rows("train")
    expected_mask = rows["genre_tag_R&B"].notna().to_numpy()
    assert targets.genre_tags.shape == targets.genre_tag_mask.shape == (len(rows), 2)
    assert targets.genre_tags.dtype == np.float32 and targets.genre_tag_mask.dtype == bool
    assert (targets.genre_tag_mask == expected_mask[:, None]).all()  # masked row: all False
    assert (targets.genre_tags[~expected_mask] == 0).all()
    rock = (rows["genre"] == "rock").to_numpy()
    assert (targets.genre_tags[expected_mask, 0] == rock[expected_mask]).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch["genre_tags"].shape == batch["genre_tag_mask"].shape == (6, 2)


def test_key_columns_give_a_key_head_and_key_targets(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    from datamodules.analysis.key import KEY_NAMES, parse_key

    df = read_manifest(synthetic_manifest)
    df["key"] = pd.Series([pd.NA] * len(df), dtype="object")
    df["mode"] = pd.Series([pd.NA] * len(df), dtype="object")
    df.loc[df.index[::2], "key"] = "D#"
    df.loc[df.index[::2], "mode"] = "minor"
    manifest = write_manifest(df, tmp_path / "keys.csv")
    dm = MusicDataModule(
        str(manifest), data_dir=str(tmp_path), num_workers=0, batch_size=6, crop_seconds=2.0
    )
    assert dm.key_names == list(KEY_NAMES)
    dm.setup("fit")
    rows = dm.split_rows("train")
    keys = dm.datasets["train"].targets.key
    labelled = rows["key"].notna().to_numpy()
    assert (keys[labelled] == parse_key("Eb minor")).all() and (keys[~labelled] == -1).all()
    assert "key" in next(iter(dm.train_dataloader()))
    no_keys = write_manifest(df.drop(columns=["key", "mode"]), tmp_path / "plain.csv")
    assert MusicDataModule(str(no_keys), data_dir=str(tmp_path)).key_names == []
