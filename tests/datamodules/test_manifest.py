from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from datamodules.manifest import (
    FEATURES,
    ManifestError,
    genre_tag_columns,
    read_manifest,
    tag_columns,
    write_manifest,
)
from tests.conftest import write_tone


def _manifest(tmp_path: Path, **overrides) -> Path:
    write_tone(tmp_path / "a.wav")
    write_tone(tmp_path / "b.wav")
    rows = {
        "track_id": ["a", "b"],
        "audio_path": ["a.wav", "b.wav"],
        "split": ["train", "val"],
        "genre": ["rock", "rock"],
        "energy": [0.5, ""],
    }
    rows.update(overrides)
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_valid_manifest_reads_with_absolute_paths_and_empty_labels(tmp_path: Path) -> None:
    df = read_manifest(_manifest(tmp_path))
    assert list(df["track_id"]) == ["a", "b"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["audio_path"])
    assert set(FEATURES) <= set(df.columns)
    assert df["energy"].isna().tolist() == [False, True]
    assert df["mood"].isna().all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"split": ["train", "holdout"]}, "unknown split 'holdout'"),
        ({"energy": [0.5, "loud"]}, "non-numeric energy value 'loud'"),
        ({"energy": [0.5, 3.0]}, "energy=3.0 outside [0.0, 1.0]"),
        ({"track_id": ["a", "a"]}, "duplicate track_id"),
        ({"audio_path": ["a.wav", "missing.wav"]}, "audio file not found"),
    ],
)
def test_invalid_manifest_names_file_line_and_problem(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    path = _manifest(tmp_path, **overrides)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    text = str(err.value)
    assert str(path) in text and message in text and "line 3" in text and "\n" not in text


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame({"track_id": ["a"], "split": ["train"]}).to_csv(path, index=False)
    with pytest.raises(ManifestError, match="missing required column.*audio_path"):
        read_manifest(path)


def test_write_is_atomic_and_round_trips_relative_paths(tmp_path: Path) -> None:
    df = read_manifest(_manifest(tmp_path))
    out = write_manifest(df, tmp_path / "copy.csv")
    assert not list(tmp_path.glob("*.tmp*"))
    assert pd.read_csv(out)["audio_path"].tolist() == ["a.wav", "b.wav"]
    assert read_manifest(out)["audio_path"].tolist() == df["audio_path"].tolist()


def test_genre_tag_columns_are_validated_and_not_teacher_tags(tmp_path: Path) -> None:
    path = _manifest(tmp_path, **{"genre_tag_Pop/Rock": [1, ""], "tag_calm": [0.2, 0.4]})
    df = read_manifest(path)
    assert genre_tag_columns(df.columns) == ["genre_tag_Pop/Rock"]
    assert tag_columns(df.columns) == ["tag_calm"]
    assert df["genre_tag_Pop/Rock"].dtype == "float64"
    assert df["genre_tag_Pop/Rock"].isna().tolist() == [False, True]
    bad = _manifest(tmp_path, **{"genre_tag_R&B": [1.0, 2.0]})
    with pytest.raises(ManifestError, match=r"line 3 .*genre_tag_R&B=2.0 outside \[0.0, 1.0\]"):
        read_manifest(bad)
