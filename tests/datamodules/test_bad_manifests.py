"""Malformed manifests fail before any training with one line naming the file, row and problem."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from datamodules.loading.datamodule import MusicDataModule
from datamodules.manifest import ManifestError, read_manifest, write_manifest


def _good(synthetic_manifest: Path) -> pd.DataFrame:
    return read_manifest(synthetic_manifest)


def _write_raw(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as it is (no normalising), with audio paths absolute."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def _line_of(df: pd.DataFrame, index: int) -> str:
    return f"line {index + 2} (track_id {df.at[index, 'track_id']})"  # header is line 1


# (case, how to break a valid manifest, regex the error must match; {line} is the broken row)
CASES = [
    ("missing_column", lambda df: df.drop(columns=["split"]), r"missing required column.*split"),
    (
        "duplicate_track_id",
        lambda df: df.assign(track_id=[*df.track_id[:-1], df.track_id.iloc[0]]),
        r"{line}: duplicate track_id",
    ),
    ("empty_track_id", lambda df: df.assign(track_id=[*df.track_id[:-1], ""]), r"empty track_id"),
    (
        "unknown_split",
        lambda df: df.assign(split=[*df.split[:-1], "training"]),
        r"{line}: unknown split 'training'",
    ),
    (
        "feature_out_of_range",
        lambda df: df.assign(danceability=[*df.danceability[:-1], 1.7]),
        r"{line}: danceability=1.7 outside \[0.0, 1.0\]",
    ),
    (
        "tempo_out_of_range",
        lambda df: df.assign(tempo=[*df.tempo[:-1], -5.0]),
        r"{line}: tempo=-5.0 outside",
    ),
    (
        "non_numeric_feature",
        lambda df: df.assign(energy=[*df.energy[:-1].astype(str), "loud"]),
        r"{line}: non-numeric energy value 'loud'",
    ),
    ("no_rows", lambda df: df.iloc[:0], r"manifest has no rows"),
]


@pytest.mark.parametrize(("case", "breaker", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_broken_manifest_names_row_and_problem(
    synthetic_manifest: Path, tmp_path: Path, case: str, breaker, pattern: str
) -> None:
    broken = breaker(_good(synthetic_manifest))
    path = _write_raw(broken, tmp_path / f"{case}.csv")
    if "{line}" in pattern:
        pattern = pattern.format(line=re.escape(_line_of(broken, len(broken) - 1)))
    with pytest.raises(ManifestError, match=pattern) as err:
        MusicDataModule(str(path), data_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))


@pytest.mark.parametrize(
    "content",
    [
        b'track_id,audio_path,split\n"a,b.wav,train\nc,d.wav,train\n',  # unclosed quote
        b"\x00\x01\x02\xff\xfe binary junk \x00" * 20,
        b"",
    ],
    ids=["unclosed_quote", "binary", "empty_file"],
)
def test_unparsable_csv_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert any(s in message for s in ("cannot parse", "missing required column", "no rows"))


def test_label_seen_only_in_test_is_named(synthetic_manifest: Path, tmp_path: Path) -> None:
    df = _good(synthetic_manifest)
    row = df.index[df["split"] == "val"][0]
    df.loc[row, ["split", "mood"]] = ["test", "melancholic"]
    path = write_manifest(df, tmp_path / "m.csv")
    with pytest.raises(
        ManifestError, match=r"mood 'melancholic' appears in split 'test' but never in train"
    ) as err:
        MusicDataModule(str(path), data_dir=str(tmp_path))
    assert f"track_id {df.at[row, 'track_id']}" in str(err.value)


def test_empty_train_split_is_refused(synthetic_manifest: Path, tmp_path: Path) -> None:
    df = _good(synthetic_manifest)
    path = write_manifest(df.assign(split="val"), tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="the train split is empty"):
        MusicDataModule(str(path), data_dir=str(tmp_path))


def test_train_split_with_no_decodable_clip_is_refused(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    df = _good(synthetic_manifest)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio" * 100)
    df.loc[df["split"] == "train", "audio_path"] = str(junk)
    dm = MusicDataModule(str(write_manifest(df, tmp_path / "m.csv")), data_dir=str(tmp_path))
    with pytest.raises(ManifestError, match="no decodable clip in the train split"):
        dm.setup("fit")


def test_empty_val_and_test_splits_still_train(synthetic_manifest: Path, tmp_path: Path) -> None:
    """No val/test rows is legal: the loaders are empty and training still runs."""
    df = _good(synthetic_manifest)
    train_only = write_manifest(df[df["split"] == "train"], tmp_path / "m.csv")
    dm = MusicDataModule(str(train_only), data_dir=str(tmp_path), num_workers=0, batch_size=4)
    dm.setup("fit")
    assert dm.val_dataloader() == [] and dm.test_dataloader() == []
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape[0] == 4
