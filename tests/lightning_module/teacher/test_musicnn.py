"""The musicnn teacher's TensorFlow graph vs our PyTorch re-implementation (``make musicnn``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.synthetic import render_clip
from lightning_module.model.backbones.musicnn import PATCH_FRAMES, MusicnnBackbone
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("musicnn") is None,
    reason="musicnn teacher not installed (make musicnn)",
)
#: Stated parity: converted PyTorch vs TensorFlow on the same float32 input (float32 round-off).
LOGIT_TOLERANCE = 1e-3
PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def wave() -> torch.Tensor:
    """7 s of synthetic rock at 16 kHz: two full patches and an end-aligned third."""
    samples, _ = render_clip("rock", "energetic", 7.0, 16000, np.random.default_rng(0))
    return torch.from_numpy(samples)


@pytest.fixture(scope="module")
def teacher():
    from lightning_module.teacher.musicnn import load_teacher

    return load_teacher("MSD_musicnn")


def test_converted_weights_reproduce_the_tensorflow_taggram(teacher, wave: torch.Tensor) -> None:
    from lightning_module.teacher.musicnn import convert_checkpoint, patches, read_checkpoint

    assert len(read_checkpoint("MSD_musicnn")) == 64  # 150 variables less Adam slots / powers
    converted = convert_checkpoint("MSD_musicnn")
    assert converted["tag_names"][:3] == ["rock", "pop", "alternative"]
    net = MusicnnBackbone().eval()
    net.load_state_dict(converted["state_dict"])
    mel = patches(teacher.mel(wave))  # the same float32 log-mel for both
    odd = np.random.default_rng(1).uniform(0, 3, (2, 300, 96)).astype(np.float32)  # not 187
    for batch in (mel, odd):
        tf_logits = teacher.logits_of(batch)
        with torch.no_grad():
            pt_logits = net.taggram(torch.from_numpy(batch).transpose(1, 2)[:, None]).numpy()
        assert np.abs(tf_logits - pt_logits).max() < LOGIT_TOLERANCE
        gap = np.abs(1 / (1 + np.exp(-tf_logits)) - 1 / (1 + np.exp(-pt_logits))).max()
        assert gap < PROBABILITY_TOLERANCE
    assert mel.shape == (3, PATCH_FRAMES, 96)


def test_student_initialised_from_the_teacher_tags_like_it(
    teacher, wave: torch.Tensor, tmp_path: Path
) -> None:
    from lightning_module.teacher.musicnn import tag_names
    from lightning_module.training.module import MusicTagger
    from scripts.convert_musicnn import main

    path = tmp_path / "msd_musicnn.pt"
    assert main(["--out", str(path)]) == 0
    model = MusicTagger(
        genre_names=["jazz", "rock"],
        tag_names=tag_names(),
        backbone="musicnn",
        pretrained=str(path),
    ).eval()
    # Exactly one patch of input: (PATCH_FRAMES - 1) hops, as our centred frontend counts frames.
    clip = wave[: (PATCH_FRAMES - 1) * 256]
    with torch.no_grad():
        student = model(clip[None])["tags"].sigmoid()[0].numpy()
    expected = teacher.taggram(clip)
    assert expected.shape == (1, 50)
    assert np.abs(student - expected[0]).max() < PROBABILITY_TOLERANCE


def test_frontend_matches_librosa_and_avoids_the_float16_trap(teacher, wave) -> None:
    librosa = pytest.importorskip("librosa")
    loud = (wave / wave.abs().max()).numpy()
    # musicnn's training-time librosa padded frames by reflection (today's default is constant).
    power = librosa.feature.melspectrogram(
        y=loud, sr=16000, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect"
    )
    ours = teacher.mel(torch.from_numpy(loud)).T
    assert np.abs(ours - np.log10(10000 * power.astype(np.float32) + 1)).max() < 1e-4
    with np.errstate(over="ignore"):  # what musicnn.extractor.batch_data does
        shipped = np.log10(10000 * power.astype(np.float16) + 1)
    assert np.isinf(shipped).any() and np.isfinite(ours).all()


@pytest.mark.skipif(not (SHARED_DATA / "gtzan-samples").is_dir(), reason="no ../shared/data")
def test_frozen_teacher_tags_real_gtzan_clips(capsys) -> None:
    from scripts.teacher_tags import main

    root = SHARED_DATA / "gtzan-samples"
    clips = [str(root / f"{genre}.00000.wav") for genre in ("rock", "metal", "jazz")]
    assert main([*clips, "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    top = [[tag.rsplit(" ", 1)[0] for tag in line.split("  ", 1)[1].split(", ")] for line in lines]
    assert "rock" in top[0] and top[1][0] == "metal" and top[2][0] == "jazz"
    assert main([str(root / "missing.wav")]) == 2
    assert "missing.wav: file not found" in capsys.readouterr().err
