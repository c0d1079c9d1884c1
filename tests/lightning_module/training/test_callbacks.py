"""TensorBoard tells the story: read a real tiny run's event files with TensorBoard's reader."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from google.protobuf import text_format

from datamodules.manifest import read_manifest
from datamodules.schema import FEATURES
from lightning_module.inference.tagger import load_checkpoint
from lightning_module.plots import confusion_figure, figure_to_array, scatter_figure

# TensorBoard's reader imports TensorFlow when it is installed (the musicnn extra): ~10 s of CPU
# for nothing. This marker module makes it use its own TF-free stub, as `tensorboard` itself can.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from tensorboard.plugins.projector import projector_config_pb2  # noqa: E402

N_CLIPS = 4  # configs/train.yaml: TensorBoardStory n_clips


@pytest.fixture(scope="module")
def run_dir(trained_checkpoint: Path) -> Path:
    """The TensorBoard run of the shared 2-epoch training (tests.conftest.trained_checkpoint)."""
    runs = sorted((trained_checkpoint.parent.parent / "logs").glob("*/version_*"))
    assert len(runs) == 1, f"expected one run per training, found {runs}"
    return runs[0]


@pytest.fixture(scope="module")
def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "images": 0, "audio": 0, "tensors": 0}
    )
    return accumulator.Reload()


def test_scalars_every_loss_and_metric_per_split_and_lr(events: EventAccumulator) -> None:
    scalars = set(events.Tags()["scalars"])
    for term in ("loss", "genre_loss", "mood_loss", "feature_loss"):
        assert f"train/{term}_epoch" in scalars and f"train/{term}_step" in scalars
        assert f"val/{term}" in scalars
    for split in ("train", "val"):
        for metric in ("genre_acc", "genre_f1", "mood_acc", "mood_f1", "feature_r2_mean"):
            assert f"{split}/{metric}" in scalars
        for name in FEATURES:
            assert {f"{split}/r/{name}", f"{split}/r2/{name}"} <= scalars
    lr = [tag for tag in scalars if tag.startswith("lr-")]
    assert lr and all(0 < s.value < 1 for s in events.Scalars(lr[0]))
    assert len(events.Scalars("val/genre_acc")) == 2  # one point per validation epoch


def test_images_every_validation_epoch(events: EventAccumulator) -> None:
    images = set(events.Tags()["images"])
    expected = {"val_confusion/genre", "val_confusion/mood"}
    expected |= {f"val_scatter/{name}" for name in FEATURES}
    expected |= {f"val_clips/logmel/{i}" for i in range(N_CLIPS)}
    assert expected == images
    for tag in expected:
        shots = events.Images(tag)
        assert len(shots) == 2 and shots[0].step < shots[1].step  # each validation epoch
        assert shots[-1].width > 100 and shots[-1].height > 100
        assert shots[-1].encoded_image_string.startswith(b"\x89PNG")


def test_audio_of_the_same_fixed_clips(events: EventAccumulator, trained_checkpoint: Path) -> None:
    sample_rate = load_checkpoint(trained_checkpoint)["hyper_parameters"]["sample_rate"]
    assert set(events.Tags()["audio"]) == {f"val_clips/audio/{i}" for i in range(N_CLIPS)}
    for i in range(N_CLIPS):
        (clip,) = events.Audio(f"val_clips/audio/{i}")  # logged once: the audio never changes
        assert clip.sample_rate == sample_rate and clip.length_frames == 2 * sample_rate
        assert clip.encoded_audio_string.startswith(b"RIFF")


def test_projector_has_clip_embeddings_with_genre_and_mood(
    run_dir: Path, trained_checkpoint: Path, synthetic_manifest: Path
) -> None:
    config = text_format.Parse(
        (run_dir / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig()
    )
    assert config.embeddings, "no projector embeddings"
    embedding = config.embeddings[-1]
    metadata = (run_dir / embedding.metadata_path).read_text().splitlines()
    vectors = (run_dir / embedding.tensor_path).read_text().splitlines()
    hp = load_checkpoint(trained_checkpoint)["hyper_parameters"]
    assert metadata[0].split("\t") == ["genre", "mood", "track_id"]
    rows = [line.split("\t") for line in metadata[1:]]
    n_val = int((read_manifest(synthetic_manifest)["split"] == "val").sum())
    assert len(rows) == len(vectors) == n_val  # one per validation clip, not per window
    assert len({r[2] for r in rows}) == len(rows)  # clips, not windows
    assert {r[0] for r in rows} <= set(hp["genre_names"]) and len({r[0] for r in rows}) > 1
    assert {r[1] for r in rows} <= set(hp["mood_names"]) and len({r[1] for r in rows}) > 1
    assert all(len(v.split("\t")) == hp["embed_dim"] for v in vectors)


def test_hparams_hold_the_config_and_final_validation_metrics(events: EventAccumulator) -> None:
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value > 0 and hparams["data.batch_size"].number_value == 8
    assert not any(name.startswith("_") for name in hparams)  # no CLI internals
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"hparams/val/genre_acc", "hparams/val/loss", "hparams/val/r2/tempo"} <= metric_tags
    final = events.Scalars("val/genre_acc")[-1].value
    assert events.Scalars("hparams/val/genre_acc")[-1].value == pytest.approx(final)


def test_figures_are_labelled() -> None:
    fig = confusion_figure(torch.eye(3), ["rock", "jazz", "folk"], "genre")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rock", "jazz", "folk"]
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    fig = scatter_figure(torch.arange(5.0).numpy(), torch.arange(5.0).numpy(), "tempo", 1.0, 1.0)
    assert fig.axes[0].get_title() == "tempo  r=1.00  R²=1.00"
    assert "BPM" in fig.axes[0].get_xlabel()
    assert figure_to_array(fig).shape[2] == 3
