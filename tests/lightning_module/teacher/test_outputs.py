"""`build_dataset.py teacher`: the accurate teacher's window outputs on tiny data (random musicnn
weights, so no TensorFlow is needed): cached, resumable, consistent shapes and ranges; the teacher
checkpoint reproduces them; the shipped-model path is predict_clip's default."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.loading.teacher_targets import OUTPUTS_NAME, TeacherOutputs
from datamodules.manifest import read_manifest, write_manifest
from datamodules.sources.registry import build_source
from lightning_module.model.backbones.musicnn import MusicnnBackbone
from lightning_module.teacher.sources import TEACHER_SOURCES

NAMES = ["Electronic", "Jazz", "Pop/Rock"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A musicnn weights file as convert_musicnn.py writes it, with random weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "musicnn.pt"
    tags = [f"tag {i}" for i in range(50)]
    torch.save({"state_dict": MusicnnBackbone().state_dict(), "tag_names": tags}, path)
    return path


@pytest.fixture(scope="module")
def manifest(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic set, half of it with genre tags, plus a corrupt file."""
    out = tmp_path_factory.mktemp("teacher_data")
    df = read_manifest(synthetic_manifest)
    index = np.arange(len(df))
    for j, name in enumerate(NAMES):  # each tag on ~2/3 of the tagged rows, absent on the rest
        df[f"genre_tag_{name}"] = np.where(
            index % 2 == 0, ((index // 2 + j) % 3 != 0) * 1.0, np.nan
        )
    (out / "corrupt.mp3").write_bytes(np.random.default_rng(1).bytes(3000))
    bad = df.iloc[[0]].assign(track_id="corrupt", audio_path=str(out / "corrupt.mp3"))
    import pandas as pd

    return write_manifest(pd.concat([df, bad], ignore_index=True), out / "manifest.csv")


@pytest.fixture(scope="module")
def built(manifest: Path, weights: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("teacher_out")
    config = {
        "manifest": str(manifest),
        "weights": str(weights),
        "max_windows": 2,
        "progress": False,
    }
    summary = build_source("teacher", config, out, TEACHER_SOURCES)
    return out, summary, config


def test_outputs_have_every_head_in_range_and_the_rerun_is_cached(built, manifest) -> None:
    out, summary, config = built
    rows = len(read_manifest(manifest, check_audio=False))
    assert summary.skipped == {"bad audio": 1} and summary.computed == rows - 1
    outputs = TeacherOutputs.load(out / OUTPUTS_NAME)
    assert len(outputs.track_ids) == rows - 1 and "corrupt" not in outputs.track_ids
    n = int(outputs.offset[-1])
    assert n == summary.windows and len(outputs.start) == n
    assert np.all(np.diff(outputs.offset) >= 1) and np.all(np.diff(outputs.offset) <= 2)
    assert set(outputs.heads) == {"genre", "mood", "genre_tags", "tags", "features"}
    # Tags frequent enough in train (the student's own rule) become outputs.
    assert set(outputs.names["genre_tags"]) <= set(NAMES) and len(outputs.names["genre_tags"]) >= 2
    assert len(outputs.names["tags"]) == 50
    assert "tempo" not in outputs.names["features"]  # musicnn is no tempo estimator
    for head in ("genre", "mood"):
        probs = outputs.heads[head]
        assert probs.shape == (n, len(outputs.names[head]))
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    for head in ("genre_tags", "tags"):
        assert ((outputs.heads[head] >= 0) & (outputs.heads[head] <= 1)).all()
    assert np.isfinite(outputs.heads["features"]).all()
    # A second run decodes and runs nothing: every clip's features come from the cache.
    again = build_source("teacher", config, out, TEACHER_SOURCES)
    assert (again.computed, again.cached) == (0, rows - 1)
    # ... and gives the very same outputs (the first run fitted to the values as cached).
    rerun = TeacherOutputs.load(out / OUTPUTS_NAME)
    np.testing.assert_array_equal(rerun.start, outputs.start)
    for head, values in outputs.heads.items():
        np.testing.assert_array_equal(rerun.heads[head], values, err_msg=head)
    assert len(read_manifest(out / "manifest.csv")) == rows - 1


def test_a_torn_cache_file_is_recomputed(built, weights: Path, tmp_path: Path) -> None:
    out, summary, config = built
    config = {**config, "embedding": summary.embedding}  # the choice is tested above: skip it
    cache = tmp_path / "features"
    shutil.copytree(out / "features", cache)
    victim = sorted(cache.glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # as a kill mid-write would, without the rename
    again = build_source(
        "teacher", {**config, "features_cache": str(cache)}, tmp_path / "out", TEACHER_SOURCES
    )
    assert again.computed == 1


def test_the_teacher_checkpoint_reproduces_its_window_outputs(built) -> None:
    from datamodules.audio import load_audio
    from lightning_module.inference.checkpoint import load_network

    out, _, _ = built
    net, spec = load_network(out / "teacher.ckpt")
    outputs = TeacherOutputs.load(out / OUTPUTS_NAME)
    assert spec.backbone in ("musicnn", "musicnn_pooled")
    assert spec.genre_tag_names == tuple(outputs.names["genre_tags"])
    df = read_manifest(out / "manifest.csv").set_index("track_id")
    track = outputs.track_ids[3]
    span = outputs.windows(track)
    wave = torch.from_numpy(load_audio(df.at[track, "audio_path"], 16000))
    start = int(round(float(outputs.start[span][0]) * 16000))
    window = torch.nn.functional.pad(wave[start : start + 48000], (0, 48000))[:48000]
    with torch.no_grad():
        got = net(window[None])
    np.testing.assert_allclose(
        got["genre"].softmax(-1)[0].numpy(), outputs.heads["genre"][span][0], atol=2e-3
    )
    np.testing.assert_allclose(
        got["genre_tags"].sigmoid()[0].numpy(), outputs.heads["genre_tags"][span][0], atol=2e-3
    )


def test_refit_fits_on_every_split_and_predict_clip_runs_it(
    built, manifest, tmp_path: Path, capsys
) -> None:
    from scripts.predict_clip import main as predict_main

    out, summary, config = built
    refit = build_source(
        "teacher",
        {
            **config,
            "refit": True,
            "features_cache": str(out / "features"),
            "embedding": summary.embedding,  # the choice is tested above: skip it
        },
        tmp_path / "refit",
        TEACHER_SOURCES,
    )
    assert refit.refit and refit.computed == 0  # the held-out teacher's features are reused
    refitted = tmp_path / "refit" / "teacher.ckpt"
    clip = read_manifest(manifest)["audio_path"].iloc[1]
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert predict_main([clip, "--checkpoint", str(refitted)]) == 0
    finally:
        os.chdir(previous)
    text = capsys.readouterr().out
    assert any(line.startswith("  genre tags: ") for line in text.splitlines())


@pytest.mark.parametrize(("device", "message"), [("gpu9", "device: "), ("cuda:0", "device cuda")])
def test_a_device_that_is_not_here_is_a_one_line_error(manifest, weights, device, message) -> None:
    from datamodules.builds import SourceError
    from lightning_module.teacher.outputs import TeacherConfig

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is here")
    with pytest.raises(SourceError, match=message):
        TeacherConfig(manifest=str(manifest), weights=str(weights), device=device)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_features_on_cuda_match_the_cpu_ones(weights: Path) -> None:
    from lightning_module.teacher.window_features import FrozenMusicnn, extract

    wave = torch.randn(16000 * 7, generator=torch.Generator().manual_seed(0)) * 0.1
    model = FrozenMusicnn(weights)
    on_cpu = extract(model, wave, 2)
    on_cuda = extract(model.to("cuda"), wave, 2)
    np.testing.assert_allclose(on_cuda.penultimate, on_cpu.penultimate, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(on_cuda.pooled, on_cpu.pooled, rtol=1e-3, atol=1e-4)
