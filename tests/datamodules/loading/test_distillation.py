"""Soft targets from a teacher's window outputs, a short distillation fit whose loss on them
falls, and the refit data module that trains on every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.loading.datamodule import MusicDataModule
from datamodules.loading.teacher_targets import SoftTargets, TeacherOutputs
from datamodules.manifest import read_manifest, write_manifest
from datamodules.schema import TASK_FIELDS, TaskSpec
from lightning_module.model.settings import LogMelSettings


def fake_outputs(df: pd.DataFrame, spec: TaskSpec, seed: int = 0) -> TeacherOutputs:
    """Random but valid teacher outputs: 1 s windows every second of 4 s clips."""
    rng = np.random.default_rng(seed)
    starts = np.arange(4, dtype=np.float32)
    n = len(df) * len(starts)

    def probs(k: int) -> np.ndarray:
        p = rng.random((n, k)).astype(np.float32) ** 4
        return p / p.sum(1, keepdims=True)

    return TeacherOutputs(
        track_ids=df["track_id"].tolist(),
        offset=np.arange(len(df) + 1, dtype=np.int64) * len(starts),
        start=np.tile(starts, len(df)),
        window_seconds=1.0,
        heads={
            "genre": probs(len(spec.genre_names)),
            "mood": probs(len(spec.mood_names)),
            "tags": rng.random((n, 2)).astype(np.float32),
            "features": rng.random((n, 2)).astype(np.float32),
        },
        names={
            # In another order than the student's: targets are matched by name.
            "genre": list(reversed(spec.genre_names)),
            "mood": list(spec.mood_names),
            "tags": ["bright", "dark"],
            "features": ["valence", "energy"],
        },
    )


SPEC = TaskSpec(genre_names=["a", "b"], mood_names=["x", "y"], feature_names=["energy"])


def three_windows(genre: list[list[float]], names: list[str]) -> TeacherOutputs:
    """One clip, three 3 s windows starting at 0, 3 and 6 s, with these genre probabilities."""
    return TeacherOutputs(
        track_ids=["t"],
        offset=np.array([0, 3]),
        start=np.array([0.0, 3.0, 6.0], np.float32),
        window_seconds=3.0,
        heads={"genre": np.array(genre, np.float32)},
        names={"genre": names},
    )


def test_crop_targets_average_the_windows_inside_the_crop() -> None:
    spec = SPEC
    outputs = three_windows([[1, 0], [0, 1], [0.5, 0.5]], ["b", "a"])
    soft = SoftTargets(outputs, spec)
    item = soft.item("t", 0.0, 6.0)  # windows 0 and 1 lie inside
    np.testing.assert_allclose(item["soft_genre"].numpy(), [0.5, 0.5])
    item = soft.item("t", 5.5, 2.0)  # no window fits: the one overlapping most (6-9 s)
    np.testing.assert_allclose(item["soft_genre"].numpy(), [0.5, 0.5])
    item = soft.item("t", 3.0, 3.0)
    np.testing.assert_allclose(item["soft_genre"].numpy(), [1.0, 0.0])  # "a" is teacher column 1
    assert bool(item["soft_genre_mask"]) and not bool(item["soft_mood_mask"])  # mood: not taught
    assert not bool(soft.item("unknown clip", 0.0, 3.0)["soft_genre_mask"])


def test_the_clip_view_gives_every_crop_the_mean_of_the_whole_clip() -> None:
    spec = SPEC
    outputs = three_windows([[1, 0], [0, 1], [0.4, 0.6]], ["a", "b"])
    soft = SoftTargets(outputs, spec, view="clip")
    for start, length in ((0.0, 3.0), (5.5, 2.0), (3.0, 6.0)):  # any crop: the whole clip
        np.testing.assert_allclose(soft.item("t", start, length)["soft_genre"], [1.4 / 3, 1.6 / 3])
    np.testing.assert_allclose(SoftTargets(outputs, spec).item("t", 0.0, 3.0)["soft_genre"], [1, 0])
    with pytest.raises(ValueError, match="teacher_view"):
        SoftTargets(outputs, spec, view="song")


@pytest.fixture()
def distill_data(synthetic_manifest: Path, tmp_path: Path) -> tuple[Path, Path]:
    df = read_manifest(synthetic_manifest)
    spec = MusicDataModule(manifest=str(synthetic_manifest), data_dir=str(tmp_path)).task
    path = tmp_path / "teacher_outputs.npz"
    fake_outputs(df, spec).save(path)
    return synthetic_manifest, path


def test_a_short_distillation_fit_lowers_the_loss_on_soft_targets(distill_data, tmp_path) -> None:
    from lightning_module.training.module import MusicTagger

    manifest, outputs = distill_data
    data = MusicDataModule(
        manifest=str(manifest),
        data_dir=str(tmp_path),
        teacher_outputs=str(outputs),
        crop_seconds=2.0,
        batch_size=16,
        num_workers=0,
        augment=False,
    )
    assert data.tag_names == ["bright", "dark"]  # a tag head for the teacher's tags
    data.setup()
    torch.manual_seed(0)
    model = MusicTagger(
        **{f: getattr(data, f) for f in TASK_FIELDS},
        width=8,
        embed_dim=32,
        logmel=LogMelSettings(n_mels=32),
        distill_weight=1.0,
        freq_mask=0,
        time_mask=0,
    )
    batch = next(iter(data.train_dataloader()))
    assert batch["soft_genre_mask"].all() and batch["soft_tags_mask"].all()
    assert batch["soft_features_mask"][:, data.feature_names.index("energy")].all()
    assert not batch["soft_features_mask"][:, data.feature_names.index("tempo")].any()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(25):
        loss = model.loss(model(batch["audio"]), batch)
        optimiser.zero_grad()
        loss["distill_loss"].backward()
        optimiser.step()
        losses.append(float(loss["distill_loss"]))
    assert losses[0] > 0 and losses[-1] < 0.7 * losses[0]


def test_without_teacher_outputs_the_distill_loss_is_zero(synthetic_manifest, tmp_path) -> None:
    data = MusicDataModule(
        manifest=str(synthetic_manifest), data_dir=str(tmp_path), num_workers=0, crop_seconds=2.0
    )
    data.setup()
    assert not any(k.startswith("soft_") for k in data.datasets["train"][0])


def test_refit_trains_on_every_row(synthetic_manifest: Path, tmp_path: Path) -> None:
    df = read_manifest(synthetic_manifest)
    df.loc[df.index[-1], "split"] = "test"
    df.loc[df.index[-1], "genre"] = "only-in-test"  # refit learns even a label test alone has
    manifest = write_manifest(df, tmp_path / "manifest.csv")
    data = MusicDataModule(
        manifest=str(manifest), data_dir=str(tmp_path), refit=True, num_workers=0
    )
    assert "only-in-test" in data.genre_names
    data.setup()
    assert data.datasets["train"].track_ids == df["track_id"].tolist()  # every row, in order
    assert "test" not in data.datasets  # nothing is held out any more
    assert len(data.split_rows("val")) == int((df["split"] == "val").sum())
    held_out = MusicDataModule(
        manifest=str(synthetic_manifest), data_dir=str(tmp_path), num_workers=0
    )
    held_out.setup()
    assert len(held_out.datasets["train"].track_ids) < len(df)
