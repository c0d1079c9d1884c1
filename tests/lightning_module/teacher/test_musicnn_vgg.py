"""musicnn's VGG tagger MSD_vgg: its TensorFlow graph vs our PyTorch port (``make musicnn``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.synthetic import render_clip
from lightning_module.model.backbones.musicnn import PATCH_FRAMES
from lightning_module.model.backbones.musicnn_vgg import MusicnnVggBackbone

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("musicnn") is None,
    reason="musicnn teacher not installed (make musicnn)",
)
#: Stated parity: converted PyTorch vs TensorFlow on the same float32 input (float32 round-off).
LOGIT_TOLERANCE = 1e-4
PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    """7 s of synthetic jazz at 16 kHz: two full patches and an end-aligned third."""
    samples, _ = render_clip("jazz", "calm", 7.0, 16000, np.random.default_rng(0))
    return torch.from_numpy(samples)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scripts.convert_musicnn import main

    path = tmp_path_factory.mktemp("vgg") / "msd_vgg.pt"
    assert main(["--model", "MSD_vgg", "--out", str(path)]) == 0
    return path


def test_converted_vgg_reproduces_the_tensorflow_taggram(converted: Path, wave) -> None:
    from lightning_module.model.backbones.musicnn import load_pretrained
    from lightning_module.teacher.musicnn import load_teacher, patches

    data = load_pretrained(converted)
    assert data["model"] == "MSD_vgg" and data["tag_names"][:3] == ["rock", "pop", "alternative"]
    net = MusicnnVggBackbone().eval()
    net.load_state_dict(data["state_dict"])
    teacher = load_teacher("MSD_vgg")
    mel = patches(teacher.mel(wave))  # the same float32 log-mel for both
    assert mel.shape == (3, PATCH_FRAMES, 96)
    tf_logits = teacher.logits_of(mel)
    with torch.no_grad():
        pt_logits = net.taggram(torch.from_numpy(mel).transpose(1, 2)[:, None]).numpy()
    assert np.abs(tf_logits - pt_logits).max() < LOGIT_TOLERANCE
    gap = np.abs(1 / (1 + np.exp(-tf_logits)) - 1 / (1 + np.exp(-pt_logits))).max()
    assert gap < PROBABILITY_TOLERANCE
    # The whole 7 s clip at once: the mean of the same three patches' logits.
    with torch.no_grad():
        whole = net.taggram(torch.from_numpy(teacher.mel(wave)).T[None, None]).numpy()
    assert np.abs(whole[0] - tf_logits.mean(axis=0)).max() < LOGIT_TOLERANCE


def test_frozen_teacher_features_of_a_vgg_file_give_its_taggram(converted: Path, wave) -> None:
    from lightning_module.teacher.musicnn import load_teacher
    from lightning_module.teacher.window_features import FrozenMusicnn

    model = FrozenMusicnn(converted)
    clip = wave[: (PATCH_FRAMES - 1) * 256]  # exactly one 187-frame patch
    features = model(clip[None])
    logits = model.backbone.tag_head(features["penultimate"]).numpy()
    expected = load_teacher("MSD_vgg").logits_of(load_teacher("MSD_vgg").mel(clip)[None])
    assert np.abs(logits - expected).max() < LOGIT_TOLERANCE
