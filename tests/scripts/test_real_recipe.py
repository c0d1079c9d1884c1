"""The real-music recipe end to end on a small sample of ../shared/data: import, mix, train, report.

Slow (real MP3/Ogg decoding and a few training steps): ``pytest -m slow tests/scripts``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import REPO_ROOT, SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED_DATA / "mood4q" / "labels.csv").is_file(), reason="../shared/data is absent"
    ),
]

#: (source folder, label column, rows per label)
SAMPLE = (
    ("gtzan3", "genre", 2),
    ("gtzan7", "genre", 1),
    ("emotify", "genre", 2),
    ("mood4q", "mood", 3),
)
#: The ten GTZAN genres and Emotify's electronic (4Q's AllMusic genres map into these).
GENRES = [
    "blues",
    "classical",
    "country",
    "disco",
    "electronic",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
]


def _sample_labels(folder: str, column: str, per_label: int, out: Path) -> Path:
    labels = pd.read_csv(SHARED_DATA / folder / "labels.csv", dtype=str)
    if "artist" in labels:  # one clip per artist, so artist groups can split
        labels = labels.drop_duplicates("artist")
    # Spread over the file numbers (GTZAN blocks), deterministic.
    sample = pd.concat(
        g.iloc[:: max(1, len(g) // per_label)].head(per_label) for _, g in labels.groupby(column)
    )
    path = out / f"{folder}-labels.csv"
    sample.to_csv(path, index=False)
    return path


def test_real_recipe_runs_a_few_steps(tmp_path: Path) -> None:
    from lightning_module.training.cli import main as train
    from scripts import build_dataset, evaluate, mix_manifests

    sources = tmp_path / "sources"
    for folder, column, per_label in SAMPLE:
        labels = _sample_labels(folder, column, per_label, tmp_path)
        config = str(REPO_ROOT / "configs" / "sources" / f"{folder}.yaml")
        args = [config, "--out", str(sources / folder), "--quiet"]
        args += ["--set", f"root={SHARED_DATA / folder}", "--set", f"labels={labels}"]
        assert build_dataset.main(args) == 0
    manifest = tmp_path / "manifest.csv"
    spec = str(REPO_ROOT / "configs" / "mix" / "real.yaml")
    assert mix_manifests.main(["--spec", spec, "--root", str(sources), "--out", str(manifest)]) == 0
    mixed = pd.read_csv(manifest)
    assert set(mixed["source"]) == {"gtzan", "gtzan7", "emotify", "mood4q"}
    assert set(mixed["genre"].dropna()) == set(GENRES)
    assert set(mixed["mood"].dropna()) == {"happy", "energetic", "sad", "calm"}
    genre_tags = [c for c in mixed.columns if c.startswith("genre_tag_")]
    assert "genre_tag_Pop/Rock" in genre_tags  # 4Q's AllMusic genres (configs/sources/mood4q.yaml)
    assert mixed.loc[mixed["source"] != "mood4q", genre_tags].isna().all().all()
    # 4Q clips with exactly one AllMusic genre carry it as their genre (mood4q.yaml).
    single = mixed.loc[mixed["source"] == "mood4q", genre_tags].fillna(0).sum(axis=1) == 1
    assert mixed.loc[single[~single].index, "genre"].isna().all()

    previous = os.getcwd()
    os.chdir(tmp_path)  # the recipe's relative paths (checkpoints/, logs/, data/) land here
    try:
        train(
            [
                "--config",
                str(REPO_ROOT / "configs" / "real.yaml"),
                f"--data.manifest={manifest}",
                "--data.num_workers=0",
                "--data.batch_size=4",
                "--trainer.max_steps=3",
                "--trainer.limit_val_batches=2",
                "--trainer.accelerator=cpu",
                "--trainer.enable_progress_bar=false",
                "--test_after_fit=false",
                "--data.min_genre_tag_count=1",  # a 12-clip 4Q sample: keep the genre-tag head
            ]
        )
    finally:
        os.chdir(previous)
    checkpoint = tmp_path / "checkpoints" / "real" / "last.ckpt"
    assert checkpoint.is_file()

    out = tmp_path / "report"
    args = [str(checkpoint), str(manifest), "--split", "all", "--out", str(out)]
    assert evaluate.main([*args, "--cache-dir", str(tmp_path / "data" / "cache")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {"gtzan", "gtzan7", "emotify", "mood4q"} <= set(report["sources"])
    assert report["hparams"]["genre_names"] == GENRES
    assert 0.0 <= report["sources"]["mood4q"]["features"]["energy"]["auc_vs_sign"]["cnn"] <= 1.0
    assert report["hparams"]["genre_tag_names"]  # the genre-tag head, weighted by real.yaml
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["loss_weights"]["genre_tags"] == 0.5
    assert report["sources"]["mood4q"]["genre_tags"]["n"] == 12  # only 4Q clips have genre tags
    assert "genre_tags" not in report["sources"]["gtzan"]
    assert report["headline"]["gtzan7"]["n_genre"] == 7


def test_a_larger_student_trains_through_the_real_config(synthetic_manifest: Path, tmp_path):
    """The MobileNet student (configs/real.yaml's input, wider) trains, saves and predicts."""
    from lightning_module.inference.tagger import Tagger
    from lightning_module.training.cli import main as train

    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        train(
            [
                "--config",
                str(REPO_ROOT / "configs" / "real.yaml"),
                f"--data.manifest={synthetic_manifest}",
                "--model.backbone=mobilenet",
                "--model.width=24",
                "--data.num_workers=0",
                "--data.batch_size=4",
                "--trainer.max_steps=2",
                "--trainer.limit_val_batches=1",
                "--trainer.accelerator=cpu",
                "--trainer.enable_progress_bar=false",
                "--test_after_fit=false",
            ]
        )
    finally:
        os.chdir(previous)
    tagger = Tagger.from_checkpoint(tmp_path / "checkpoints" / "real" / "last.ckpt")
    assert tagger.spec.backbone == "mobilenet" and tagger.spec.width == 24
    clip = synthetic_manifest.parent / pd.read_csv(synthetic_manifest)["audio_path"].iloc[0]
    assert tagger.predict_file(clip).genre[0][0] in tagger.spec.genre_names
