"""The PyTorch port of musicnn's VGG taggers, its registry entries and the frozen feature
extractor on a VGG file; no TensorFlow needed (random weights in the converter's format)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_module.model.backbones.musicnn import PATCH_FRAMES, MusicnnBackbone
from lightning_module.model.backbones.musicnn_vgg import MAX_SINGLE_FRAMES, MusicnnVggBackbone
from lightning_module.model.backbones.pretrained import build_pretrained_backbone
from lightning_module.teacher.window_features import FrozenMusicnn, extract
from lightning_module.training.module import MusicTagger

TEACHER_TAGS = ["rock", "jazz", *(f"tag{i}" for i in range(48))]


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``*_vgg`` weights file in the converter's format (random weights, trained-like BN)."""
    torch.manual_seed(0)
    backbone = MusicnnVggBackbone()
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(0, 1)
            module.running_var.uniform_(0.5, 2)
    path = tmp_path_factory.mktemp("vgg") / "msd_vgg.pt"
    torch.save(
        {"state_dict": backbone.state_dict(), "tag_names": TEACHER_TAGS, "model": "MSD_vgg"}, path
    )
    return path


def test_size_matches_the_pretrained_checkpoint() -> None:
    net = MusicnnVggBackbone()
    trainable = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for n, b in net.named_buffers() if "running" in n)
    assert trainable + buffers == 607_030  # MSD_vgg's trained values outside the Adam slots
    assert net.embed_dim == net.taggram_dim == 256 and MAX_SINGLE_FRAMES == 193
    assert MusicnnVggBackbone(pooled_embedding=True).embed_dim == 256 + 2 * 640


@pytest.mark.parametrize("frames", [1, 188, 300])
def test_features_have_fixed_shapes_for_any_frame_count(frames: int) -> None:
    net = MusicnnVggBackbone(pooled_embedding=True).eval()
    spec = torch.randn(2, 1, 96, frames)
    with torch.no_grad():
        features = net.features(spec)
        assert {k: tuple(v.shape) for k, v in features.items()} == {
            "max_pool": (2, 640),
            "mean_pool": (2, 640),
            "penultimate": (2, 256),
        }
        embedding = net(spec)
        assert embedding.shape == (2, 1536) and torch.isfinite(embedding).all()
        assert net.tag_head(embedding[:, :256]).shape == (2, 50)


def test_short_inputs_are_repeat_padded_and_long_ones_cut_into_patches() -> None:
    torch.manual_seed(1)
    net = MusicnnVggBackbone().eval()
    with torch.no_grad():
        short = torch.randn(1, 1, 96, 80)
        padded = torch.cat([short, short, short], dim=3)[..., :PATCH_FRAMES]
        assert torch.allclose(net.taggram(short), net.taggram(padded), atol=1e-5)
        # 400 frames: patches at 0, 187 and the end-aligned 213; logits are the patches' mean.
        long = torch.randn(1, 1, 96, 400)
        parts = [long[..., s : s + PATCH_FRAMES] for s in (0, 187, 213)]
        mean = torch.stack([net.taggram(p) for p in parts]).mean(dim=0)
        assert torch.allclose(net.taggram(long), mean, atol=1e-5)
        maxima = torch.stack([net.features(p)["max_pool"] for p in parts]).amax(dim=0)
        assert torch.allclose(net.features(long)["max_pool"], maxima, atol=1e-5)


def test_build_pretrained_backbone_picks_the_architecture(vgg_file: Path, tmp_path: Path) -> None:
    vgg = build_pretrained_backbone(vgg_file, pooled_embedding=True)
    assert isinstance(vgg, MusicnnVggBackbone) and vgg.pooled_embedding and not vgg.training
    saved = torch.load(vgg_file, weights_only=True)["state_dict"]
    assert torch.equal(vgg.state_dict()["blocks.4.conv.weight"], saved["blocks.4.conv.weight"])
    old = tmp_path / "musicnn.pt"  # a file of before the VGG ports: no "model"
    torch.save({"state_dict": MusicnnBackbone().state_dict(), "tag_names": TEACHER_TAGS}, old)
    assert type(build_pretrained_backbone(old)) is MusicnnBackbone
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": MusicnnBackbone().state_dict(), "model": "MTT_vgg"}, wrong)
    with pytest.raises(ValueError, match="wrong.pt: weights do not fit the MusicnnVggBackbone"):
        build_pretrained_backbone(wrong)
    with pytest.raises(ValueError, match="musicnn.pt: holds musicnn weights; the musicnn_vgg"):
        MusicTagger(backbone="musicnn_vgg", pretrained=str(old))


def test_frozen_musicnn_reads_a_vgg_file(vgg_file: Path) -> None:
    model = FrozenMusicnn(vgg_file)
    assert isinstance(model.backbone, MusicnnVggBackbone)
    wave = torch.randn(16000 * 7) * 0.1
    features = extract(model, wave, max_windows=8)
    assert features.starts.tolist() == [0.0, 3.0, 4.0]  # 3 s windows, the last end-aligned
    assert features.penultimate.shape == (3, 256) and features.pooled.shape == (3, 1280)
    # Each 3 s window (188 frames) goes through the backbone whole, as a checkpoint would run it.
    spec = model.frontend(wave[16000 * 3 : 16000 * 6][None])
    with torch.no_grad():
        expected = model.backbone.features(spec)["penultimate"][0].numpy()
    assert spec.shape[-1] == 188 and abs(features.penultimate[1] - expected).max() < 1e-5


def test_vgg_student_starts_from_the_teacher_and_freezes_its_frontend(vgg_file: Path) -> None:
    model = MusicTagger(
        tag_names=["jazz", "not_a_teacher_tag"],
        genre_names=["a", "b"],
        backbone="musicnn_vgg_pooled",
        pretrained=str(vgg_file),
        freeze="frontend",
    )
    assert model.hparams.logmel["n_mels"] == 96 and model.hparams.logmel["compression"] == "log1p"
    saved = torch.load(vgg_file, weights_only=True)["state_dict"]
    head = model.net.heads.heads["tags"]
    assert torch.equal(head.weight[0, :256], saved["tag_head.weight"][1])  # jazz
    assert not head.weight[0, 256:].any() and head.bias[0] == saved["tag_head.bias"][1]
    frozen = {k: v.clone() for k, v in model.net.backbone.state_dict().items()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(2, 24000))  # 1.5 s crops: repeat-padded to one patch
    torch.nn.functional.cross_entropy(out["genre"], torch.tensor([0, 1])).backward()
    optimizer.step()
    after = model.net.backbone.state_dict()
    for key in ("input_norm.running_mean", "blocks.1.conv.weight", "blocks.1.norm.running_var"):
        assert torch.equal(after[key], frozen[key]), key
    assert not torch.equal(after["blocks.2.conv.weight"], frozen["blocks.2.conv.weight"])
