"""`build_dataset.py musicnn`: the real teacher labels three generated clips (`make musicnn`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from datamodules.manifest import read_manifest, tag_columns, write_manifest
from datamodules.synthetic import render_clip
from tests.conftest import write_tone

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("musicnn") is None,
    reason="musicnn teacher not installed (make musicnn)",
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 4 s clips of different synthetic genres (one 22.05 kHz stereo) and two bad files."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(3)
    rows = []
    for genre, sr, channels in (("rock", 16000, 1), ("electronic", 22050, 2), ("folk", 16000, 1)):
        samples, _ = render_clip(genre, "happy", 4.0, sr, rng)
        path = root / f"{genre}.wav"
        sf.write(path, np.stack([samples] * channels, axis=1) if channels > 1 else samples, sr)
        rows.append({"track_id": genre, "audio_path": str(path), "split": "train", "genre": genre})
    (root / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    write_tone(root / "short.wav", seconds=0.3)
    for name in ("corrupt.mp3", "short.wav"):
        rows.append({"track_id": name, "audio_path": str(root / name), "split": "val"})
    return write_manifest(pd.DataFrame(rows), root / "manifest.csv")


def test_teacher_labels_clips_and_a_rerun_does_no_work(manifest: Path, tmp_path: Path) -> None:
    from datamodules.sources.registry import build_source
    from lightning_module.teacher.musicnn import tag_names
    from lightning_module.teacher.sources import TEACHER_SOURCES

    out = tmp_path / "tagged"
    summary = build_source(
        "musicnn", {"manifest": str(manifest), "progress": False}, out, TEACHER_SOURCES
    )
    assert (summary.tagged, summary.computed, summary.cached) == (3, 3, 0)
    assert summary.skipped == {"bad audio": 2}

    df = read_manifest(out / "manifest.csv")  # also checks every tag value lies in [0, 1]
    assert tag_columns(df.columns) == [f"tag_{name}" for name in tag_names()]
    assert len(tag_columns(df.columns)) == 50 and "tag_hip_hop" in df.columns
    probs = df[tag_columns(df.columns)].to_numpy()
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    # The float16 trap gives every loud clip the same taggram; ours tells the clips apart.
    assert np.abs(probs[0] - probs[1]).max() > 0.02 and np.abs(probs[0] - probs[2]).max() > 0.02
    assert df["genre"].tolist() == ["rock", "electronic", "folk"]  # input columns carried over
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped["track_id"]) == ["corrupt.mp3", "short.wav"]
    for name, detail in zip(skipped["track_id"], skipped["detail"], strict=True):
        assert name in detail

    cache_files = sorted((out / "teacher_cache").rglob("*.npy"))
    stamps = [p.stat().st_mtime_ns for p in cache_files]
    again = build_source(
        "musicnn", {"manifest": str(manifest), "progress": False}, out, TEACHER_SOURCES
    )
    assert (again.computed, again.cached, again.tagged) == (0, 3, 3)
    assert [p.stat().st_mtime_ns for p in cache_files] == stamps
    pd.testing.assert_frame_equal(read_manifest(out / "manifest.csv"), df)


def test_script_resumes_and_fills_labels(manifest: Path, tmp_path: Path, capsys) -> None:
    from scripts.build_dataset import main

    out = tmp_path / "tagged"
    args = ["musicnn", "--manifest", str(manifest), "--out", str(out), "--quiet"]
    assert main([*args, "--set", "fill_labels=true", "--set", "min_probability=0.0"]) == 0
    assert "computed 3" in capsys.readouterr().out
    df = read_manifest(out / "manifest.csv")
    assert df["genre"].tolist() == ["rock", "electronic", "folk"]  # present labels never replaced
    assert df["mood"].notna().all()  # empty moods filled from the teacher's mood tags
    assert set(df["mood"]) <= {"happy", "sad", "energetic", "calm"}
    assert main(args) == 0
    assert "computed 0, cached 3" in capsys.readouterr().out
    assert main(["musicnn", "--out", str(out)]) == 2
    assert "manifest is required" in capsys.readouterr().err
