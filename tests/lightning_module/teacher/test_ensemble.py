"""The teacher on several pretrained taggers: one feature cache keyed by each tagger's weights
(resumable, a new tagger adds only its own features), heads fitted on the concatenation, and the
ensemble checkpoint reproducing the fitted heads (random weights: no TensorFlow needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.builds import SourceError
from datamodules.manifest import read_manifest, write_manifest
from datamodules.schema import TaskSpec
from datamodules.sources.registry import build_source
from lightning_module.model.backbones.musicnn import MusicnnBackbone
from lightning_module.teacher.probe import (
    Embedding,
    LinearHead,
    Teacher,
    candidate_embeddings,
    fit_teacher,
    teacher_checkpoint,
)
from lightning_module.teacher.sources import TEACHER_SOURCES
from lightning_module.teacher.window_features import FrozenMusicnn, WindowFeatures, extract


def _weights(folder: Path, model: str, seed: int) -> Path:
    torch.manual_seed(seed)
    path = folder / f"{model.lower()}.pt"
    tags = [f"{model} tag {i}" for i in range(50)]
    torch.save(
        {"state_dict": MusicnnBackbone().state_dict(), "tag_names": tags, "model": model}, path
    )
    return path


@pytest.fixture(scope="module")
def two_taggers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("taggers")
    return [_weights(folder, "MSD_musicnn", 0), _weights(folder, "MTT_musicnn", 1)]


def test_a_second_tagger_adds_only_its_own_cached_features(
    synthetic_manifest: Path, two_taggers: list[Path], tmp_path: Path
) -> None:
    # 16 clips of both splits: the musicnn passes cost ~0.5 s per clip.
    df = read_manifest(synthetic_manifest)
    df = df[df["genre"].isin(sorted(df["genre"].unique())[:2])]
    subset = df.groupby(["split", "genre", "mood"]).head(1)
    manifest = write_manifest(subset, tmp_path / "manifest.csv")
    rows = len(subset)
    cache = tmp_path / "features"
    config = {
        "manifest": str(manifest),
        "max_windows": 1,
        "embeddings": ["musicnn"],
        "features_cache": str(cache),
        "progress": False,
    }
    one = build_source(
        "teacher", {**config, "weights": str(two_taggers[0])}, tmp_path / "a", TEACHER_SOURCES
    )
    assert one.computed == rows and len(list(cache.glob("*.npz"))) == rows
    both = ",".join(map(str, two_taggers))
    two = build_source("teacher", {**config, "weights": both}, tmp_path / "b", TEACHER_SOURCES)
    # Keyed by each file's weights: the first tagger's features are reused, the second's added.
    assert two.computed == rows and len(list(cache.glob("*.npz"))) == 2 * rows
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    tried = {row["embedding"] for row in summary["candidates"]}
    assert tried == {
        "MSD_musicnn:musicnn",
        "MTT_musicnn:musicnn",
        "MSD_musicnn+MTT_musicnn:musicnn",
    }
    assert summary["embedding"] in tried
    # The refit of `make refit` may fix the embedding the held-out run chose: one candidate.
    both_concat = "MSD_musicnn+MTT_musicnn:musicnn"
    fixed = {**config, "weights": both, "embedding": both_concat}
    build_source("teacher", fixed, tmp_path / "c", TEACHER_SOURCES)
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert {row["embedding"] for row in summary["candidates"]} == {both_concat}
    with pytest.raises(SourceError, match="is not a candidate"):
        build_source(
            "teacher", {**fixed, "embedding": "x:musicnn"}, tmp_path / "d", TEACHER_SOURCES
        )


def test_the_same_file_twice_is_a_one_line_error(synthetic_manifest, two_taggers) -> None:
    from lightning_module.teacher.outputs import TeacherConfig

    with pytest.raises(SourceError, match="distinct files"):
        TeacherConfig(manifest=str(synthetic_manifest), weights=[str(two_taggers[0])] * 2)


def test_heads_fitted_on_the_concatenation_win_when_each_tagger_knows_half() -> None:
    """The class is the sign of a + b, with a seen only by tagger A and b only by tagger B: each
    alone is clearly worse on val than the concatenation, which is chosen."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 240
    a, b = rng.normal(size=n), rng.normal(size=n)
    label = (a + b > 0).astype(int)

    def clip(signal: float, seed: int) -> WindowFeatures:
        noise = np.random.default_rng(seed).normal(scale=0.5, size=(2, 200))
        penultimate = (noise + signal).astype(np.float32)  # every value: the signal + noise
        return WindowFeatures(np.zeros(2, np.float32), penultimate, np.zeros((2, 4), np.float16))

    features = {f"t{i}": {"A": clip(a[i], i), "B": clip(b[i], n + i)} for i in range(n)}
    df = pd.DataFrame(
        {
            "track_id": list(features),
            "split": np.where(np.arange(n) % 4 == 0, "val", "train"),
            "genre": np.array(["low", "high"])[label],
        }
    )
    spec = TaskSpec(genre_names=["high", "low"], feature_names=[], feature_mean=[], feature_std=[])
    candidates = candidate_embeddings(["A", "B"], ["musicnn"])
    teacher, table = fit_teacher(df, features, spec, candidates)
    assert teacher.embedding == Embedding(("A", "B"), "musicnn")
    assert teacher.heads["genre"].weight.shape == (2, 400)  # both taggers' 200 values
    best = {e.name: max(r["val"] for r in table if r["embedding"] == e.name) for e in candidates}
    assert best["A+B:musicnn"] > max(best["A:musicnn"], best["B:musicnn"]) + 0.05


def test_the_ensemble_checkpoint_computes_what_the_fitted_heads_do(two_taggers) -> None:
    from lightning_module.inference.checkpoint import load_network
    from lightning_module.model.backbones.musicnn import load_pretrained

    wave = torch.randn(16000 * 3, generator=torch.Generator().manual_seed(2)) * 0.1
    models = {"MSD_musicnn": two_taggers[0], "MTT_musicnn": two_taggers[1]}
    clip = {name: extract(FrozenMusicnn(path), wave, 1) for name, path in models.items()}
    embedding = Embedding(tuple(models), "musicnn_pooled")
    x = embedding.of(clip)
    assert x.shape == (1, 2 * 1706)
    rng = np.random.default_rng(3)
    head = LinearHead(
        rng.normal(scale=0.01, size=(3, x.shape[1])).astype(np.float32),
        np.zeros(3, np.float32),
    )
    teacher = Teacher(embedding, {"genre": head}, {"genre": ["a", "b", "c"]}, [])
    spec = TaskSpec(genre_names=["a", "b", "c"], feature_names=[], feature_mean=[], feature_std=[])
    weights = {name: load_pretrained(path) for name, path in models.items()}
    checkpoint = teacher_checkpoint(teacher, spec, weights, {})
    assert checkpoint["hyper_parameters"]["backbone_members"] == ["musicnn_pooled"] * 2
    path = two_taggers[0].parent / "ensemble.ckpt"
    torch.save(checkpoint, path)
    net, loaded = load_network(path)
    assert loaded.backbone == "ensemble"
    with torch.no_grad():
        got = net(wave[None])["genre"].softmax(-1)[0].numpy()
    want = teacher.window_outputs(clip, None)["genre"][0]
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_per_head_each_head_reads_the_tagger_that_knows_it() -> None:
    """Tagger A hears the genre and B the energy: one shared embedding has to pick a compromise
    (or both), per head genre reads A and the features read B, each zero on the other's columns,
    and the teacher computes exactly what each head was fitted on."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 200
    genre, energy = rng.normal(size=n), rng.normal(size=n)

    def clip(signal: float, seed: int, pooled: int) -> WindowFeatures:
        noise = np.random.default_rng(seed).normal(scale=0.5, size=(2, 200))
        pool = np.random.default_rng(seed + 7).normal(size=(2, pooled)).astype(np.float16)
        return WindowFeatures(np.zeros(2, np.float32), (noise + signal).astype(np.float32), pool)

    features = {
        f"t{i}": {"A": clip(genre[i], i, 6), "B": clip(energy[i], n + i, 10)} for i in range(n)
    }
    df = pd.DataFrame(
        {
            "track_id": list(features),
            "split": np.where(np.arange(n) % 4 == 0, "val", "train"),
            "genre": np.array(["low", "high"])[(genre > 0).astype(int)],
            "energy": energy,
        }
    )
    spec = TaskSpec(
        genre_names=["high", "low"],
        feature_names=["energy"],
        feature_mean=[0.0],
        feature_std=[1.0],
    )
    candidates = candidate_embeddings(["A", "B"], ["musicnn", "musicnn_pooled"])
    teacher, table = fit_teacher(df, features, spec, candidates, per_head=True)
    assert teacher.head_embeddings["genre"].models == ("A",)
    assert teacher.head_embeddings["features"].models == ("B",)
    union = teacher.embedding
    assert union.models == ("A", "B")
    a_width = features["t0"]["A"].embedding(union.kind).shape[1]
    assert teacher.heads["genre"].weight.shape[1] == union.of(features["t0"]).shape[1]
    assert not teacher.heads["genre"].weight[:, a_width:].any()  # nothing read from B
    assert not teacher.heads["features"].weight[:, :a_width].any()  # nothing read from A
    # The widened heads compute what they were fitted on, from the union's columns.
    for embedding in teacher.head_embeddings.values():
        columns = embedding.columns_in(union, features["t0"])
        x = union.of(features["t7"])
        np.testing.assert_allclose(x[:, columns], embedding.of(features["t7"]))
    # Per head beats the shared choice on val head by head (stage 1 scores).
    shared, _ = fit_teacher(df, features, spec, candidates)
    assert len(set(shared.head_embeddings.values())) == 1
    per_head_val = {c.head: c.score for c in teacher.choices}
    assert per_head_val["genre"] > 0.85 and per_head_val["features"] > 0.85
    stage1 = [r for r in table if r["stage"] == "embedding"]
    assert {r["embedding"] for r in stage1} == {c.name for c in candidates}
