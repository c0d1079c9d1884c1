"""The folder source (one subfolder per label) and the build machinery every source shares."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from datamodules.manifest import read_manifest
from datamodules.sources.base import SourceError
from datamodules.sources.registry import build_source
from tests.conftest import write_tone


def make_tree(root, per_label=4):
    """<root>/<genre>/<genre>.000NN.wav, plus corrupt, silent, too-short and unlabelled files."""
    for genre in ("jazz", "rock", "classical"):
        (root / genre).mkdir(parents=True)
        for i in range(per_label):
            write_tone(root / genre / f"{genre}.{i:05d}.wav", seconds=1.2, sr=8000)
    (root / "rock" / "rock.00099.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    sf.write(root / "jazz" / "jazz.00098.wav", np.zeros(16000, dtype=np.float32), 8000)
    write_tone(root / "classical" / "classical.00097.wav", seconds=0.3, sr=8000)
    write_tone(root / "loose.wav", seconds=1.2, sr=8000)
    (root / "jazz" / "notes.txt").write_text("not audio")
    return root


def build(root, out, **options):
    config = {"root": str(root), "name": "toy", "progress": False, **options}
    return build_source("folder", config, out)


def test_folder_build_checks_every_file_and_lists_the_bad_ones(tmp_path):
    root = make_tree(tmp_path / "music")
    summary = build(root, tmp_path / "out", split={"val_fraction": 0.25, "test_fraction": 0.25})
    df = read_manifest(tmp_path / "out" / "manifest.csv")  # valid, audio exists
    assert len(df) == 12
    assert sorted(df["genre"].unique()) == ["classical", "jazz", "rock"]
    assert set(df["source"]) == {"toy"}
    assert df["track_id"].str.startswith("toy:").all()
    for genre in ("classical", "jazz", "rock"):  # stratified: every genre in every split
        assert set(df.loc[df["genre"] == genre, "split"]) == {"train", "val", "test"}
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    reasons = dict(zip(skipped["track_id"], skipped["reason"], strict=True))
    assert reasons == {
        "toy:rock.00099": "bad audio",
        "toy:jazz.00098": "bad audio",
        "toy:classical.00097": "bad audio",
        "toy:loose": "no label",
    }
    details = dict(zip(skipped["track_id"], skipped["detail"], strict=True))
    assert "silent" in details["toy:jazz.00098"]
    assert "too short" in details["toy:classical.00097"]
    assert all("\n" not in d for d in skipped["detail"])
    assert (summary.listed, summary.labelled, summary.with_audio) == (16, 15, 12)
    assert summary.skipped == {"bad audio": 3, "no label": 1}
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["with_audio"] == 12
    assert "tracks listed      16" in summary.format()


def test_rerun_is_idempotent_and_only_new_files_are_decoded(tmp_path):
    root = make_tree(tmp_path / "music")
    out = tmp_path / "out"
    first = build(root, out)
    before = (out / "manifest.csv").read_bytes()
    again = build(root, out)
    assert (again.reused, again.checked) == (12, 0)
    assert (out / "manifest.csv").read_bytes() == before
    write_tone(root / "jazz" / "jazz.00004.wav", seconds=1.2, sr=8000)
    third = build(root, out)
    assert (third.reused, third.checked) == (12, 1)  # only the new file; bad ones are remembered
    assert third.with_audio == first.with_audio + 1
    assert "toy:jazz.00004" in set(read_manifest(out / "manifest.csv")["track_id"])
    write_tone(root / "rock" / "rock.00099.wav", seconds=1.2, sr=8000)  # a bad file gets fixed
    fourth = build(root, out)
    assert (fourth.checked, fourth.with_audio) == (1, third.with_audio + 1)


def test_label_map_renames_and_clears(tmp_path):
    root = make_tree(tmp_path / "music")
    build(
        root,
        tmp_path / "out",
        label_column="mood",
        label_map={"mood": {"Jazz": "calm", "rock": "energetic"}},
        only_mapped=True,
    )
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(df["mood"].unique()) == ["calm", "energetic"]  # case-insensitive map
    assert df["genre"].isna().all()
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert (skipped["reason"] == "no label").sum() == 6  # 5 classical + the loose file


def test_split_lists_decide_splits_and_unlisted_files_are_skipped(tmp_path):
    root = make_tree(tmp_path / "music")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text(
        "\n".join(f"{g}/{g}.{i:05d}.wav" for g in ("jazz", "rock", "classical") for i in (0, 1))
    )
    (lists / "test.txt").write_text("jazz/jazz.00002.wav\nrock/rock.00002.wav\n")
    split = {"lists": {"train": str(lists / "train.txt"), "test": str(lists / "test.txt")}}
    build(root, tmp_path / "out", split=split)
    df = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")
    assert df["split"].value_counts().to_dict() == {"train": 6, "test": 2}
    assert df.at["toy:rock.00002", "split"] == "test"
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert "toy:jazz.00003" in set(
        skipped.loc[skipped["reason"] == "not in split lists", "track_id"]
    )


def test_bad_config_is_one_clear_line(tmp_path):
    with pytest.raises(SourceError, match="unknown key.*roots"):
        build_source("folder", {"roots": "x"}, tmp_path / "out")
    with pytest.raises(SourceError, match="folder not found"):
        build_source("folder", {"root": str(tmp_path / "nowhere")}, tmp_path / "out")
    with pytest.raises(KeyError, match="unknown source"):
        build_source("nope", {}, tmp_path / "out")
