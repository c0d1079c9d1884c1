"""The PyTorch musicnn backbone and ``--model.pretrained``; no TensorFlow needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from datamodules.manifest import read_manifest
from lightning_module.inference.tagger import Tagger
from lightning_module.model.backbones.musicnn import (
    MUSICNN_FRONTEND,
    MUSICNN_SAMPLE_RATE,
    PATCH_FRAMES,
    MusicnnBackbone,
    tag_slug,
)
from lightning_module.model.settings import LogMelSettings
from lightning_module.training.module import MusicTagger
from tests.conftest import run_training
from tests.lightning_module.training.test_tag_head import tagged_manifest

TEACHER_TAGS = ["rock", "jazz", "female_vocalists", *(f"tag{i}" for i in range(47))]


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A weights file in the converter's format, from a randomly initialised backbone."""
    torch.manual_seed(0)
    backbone = MusicnnBackbone()
    path = tmp_path / "musicnn.pt"
    torch.save({"state_dict": backbone.state_dict(), "tag_names": TEACHER_TAGS}, path)
    return path


def test_shapes_and_size_match_the_pretrained_model() -> None:
    net = MusicnnBackbone().eval()
    spec = torch.randn(2, 1, 96, PATCH_FRAMES)
    assert net(spec).shape == (2, 200) and net.taggram(spec).shape == (2, 50)
    assert net(torch.randn(1, 1, 96, 40)).shape == (1, 200)  # any number of frames
    # MSD_musicnn's checkpoint holds 792,079 trained values (0.79 M) outside the Adam slots.
    trainable = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for n, b in net.named_buffers() if "running" in n)
    assert trainable + buffers == 792_079


def test_tag_slug() -> None:
    assert tag_slug("Hip-Hop") == "hip_hop" and tag_slug("female vocalists") == "female_vocalists"
    assert tag_slug("00s") == "00s" and tag_slug("Progressive rock") == "progressive_rock"


def test_musicnn_backbone_sets_the_teacher_frontend() -> None:
    model = MusicTagger(
        genre_names=["a", "b"],
        backbone="musicnn",
        logmel=LogMelSettings(n_mels=64, compression="db"),
    )
    for key, value in {
        "logmel": MUSICNN_FRONTEND.to_dict(),
        "sample_rate": MUSICNN_SAMPLE_RATE,
    }.items():
        assert model.hparams[key] == value
    assert model.net.frontend.compression == "log1p"
    assert model.net.frontend.mel.mel_scale.n_mels == 96
    with pytest.raises(ValueError, match="sample_rate 16000"):
        MusicTagger(backbone="musicnn", sample_rate=22050)


def test_pretrained_loads_backbone_and_shared_tag_rows(weights: Path) -> None:
    saved = torch.load(weights, weights_only=True)
    model = MusicTagger(
        tag_names=["jazz", "not_a_teacher_tag"], backbone="musicnn", pretrained=str(weights)
    )
    state = model.net.backbone.state_dict()
    for key, value in saved["state_dict"].items():
        assert torch.equal(state[key], value), key
    head = model.net.heads.heads["tags"]
    assert torch.equal(head.weight[0], saved["state_dict"]["tag_head.weight"][1])  # jazz
    assert torch.equal(head.bias[0], saved["state_dict"]["tag_head.bias"][1])
    assert not torch.equal(head.weight[1], saved["state_dict"]["tag_head.weight"][0])


def test_pretrained_tag_rows_into_the_wider_pooled_head(weights: Path) -> None:
    """``musicnn_pooled``'s tag head reads 1,706 values: the teacher's row fills the penultimate
    layer's 200, the pooled features get zeros, so the student starts with the teacher's tags."""
    saved = torch.load(weights, weights_only=True)
    model = MusicTagger(
        tag_names=["jazz", "rock"], backbone="musicnn_pooled", pretrained=str(weights)
    )
    head = model.net.heads.heads["tags"]
    assert head.weight.shape[1] > 200
    assert torch.equal(head.weight[0, :200], saved["state_dict"]["tag_head.weight"][1])
    assert not head.weight[0, 200:].any()
    spec = torch.randn(2, 1, 96, PATCH_FRAMES)
    with torch.no_grad():
        backbone = model.net.backbone.eval()
        taggram = backbone.taggram(spec)[:, 1]
        assert torch.allclose(head(backbone(spec))[:, 0], taggram, atol=1e-5)


@pytest.mark.parametrize("backbone", ["musicnn", "resnet"])
def test_frozen_frontend_keeps_weights_and_batchnorm_statistics(backbone: str) -> None:
    torch.manual_seed(0)
    model = MusicTagger(genre_names=["a", "b"], backbone=backbone, freeze="frontend")
    frontend = torch.nn.ModuleList(model.net.backbone.frontend_modules())
    assert all(not p.requires_grad for p in frontend.parameters())
    frontend_before = {k: v.clone() for k, v in frontend.state_dict().items()}
    learning = [p for p in model.net.backbone.parameters() if p.requires_grad]
    learning_before = [p.detach().clone() for p in learning]
    assert not any(m.training for f in frontend for m in f.modules())
    model.train()
    assert not any(m.training for f in frontend for m in f.modules())
    assert model.net.heads.training
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(4, 24000))
    torch.nn.functional.cross_entropy(out["genre"], torch.tensor([0, 1, 0, 1])).backward()
    optimizer.step()
    assert any(k.endswith("running_mean") for k in frontend_before)
    for key, value in frontend.state_dict().items():  # weights and BatchNorm running statistics
        assert torch.equal(value, frontend_before[key]), key
    # the rest learns
    assert any(not torch.equal(p, q) for p, q in zip(learning, learning_before, strict=True))


def test_frozen_backbone_trains_only_the_heads() -> None:
    model = MusicTagger(mood_names=["a", "b"], backbone="musicnn", freeze="backbone")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("net.heads.") for n in trainable)
    with pytest.raises(ValueError, match="--model.freeze must be"):
        MusicTagger(freeze="everything")


def test_pretrained_errors_name_the_problem(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.pt: pretrained weights not found"):
        MusicTagger(backbone="musicnn", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="needs --model.backbone musicnn"):
        MusicTagger(backbone="resnet", pretrained=str(weights))
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": MusicnnBackbone(n_tags=3).state_dict()}, bad)
    with pytest.raises(ValueError, match="bad.pt: weights do not fit.*size mismatch for tag_head"):
        MusicTagger(backbone="musicnn", pretrained=str(bad))


def test_fine_tune_from_pretrained_through_the_cli(
    synthetic_manifest: Path, weights: Path, tmp_path: Path
) -> None:
    manifest = tagged_manifest(synthetic_manifest, tmp_path / "tagged")
    cli = run_training(
        tmp_path,
        manifest,
        "--model.backbone=musicnn",
        f"--model.pretrained={weights}",
        "--model.freeze=frontend",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
    )
    assert cli.trainer.global_step == 1
    logmel = cli.model.hparams.logmel
    assert logmel["n_mels"] == 96 and logmel["compression"] == "log1p"
    # The config LightningCLI saved agrees with the checkpoint's hyperparameters.
    config = yaml.safe_load(next((tmp_path / "logs").rglob("config.yaml")).read_text())
    saved = {**config["model"], "sample_rate": config["data"]["sample_rate"]}  # linked from data
    dictated = {"logmel": MUSICNN_FRONTEND.to_dict(), "sample_rate": MUSICNN_SAMPLE_RATE}
    for key, value in dictated.items():
        assert saved[key] == value == cli.model.hparams[key], key
    assert saved["embed_dim"] == cli.model.hparams.embed_dim == 200
    assert torch.isfinite(cli.trainer.callback_metrics["val/tag_loss"])
    # Through the Trainer (which never calls train()), the frozen front-end keeps its pretrained
    # weights and BatchNorm statistics; the mid-end learned.
    pretrained = torch.load(weights, weights_only=True)["state_dict"]
    trained = cli.model.net.backbone.state_dict()
    frontend = [k for k in pretrained if k.startswith(("input_norm.", "timbral.", "temporal."))]
    assert any(k.endswith("running_mean") for k in frontend)
    for key in frontend:
        assert torch.equal(trained[key], pretrained[key]), key
    assert not torch.equal(trained["midend.0.conv.weight"], pretrained["midend.0.conv.weight"])
    # The checkpoint alone rebuilds the musicnn student, frontend included, for inference.
    tagger = Tagger.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert tagger.net.frontend.compression == "log1p"
    assert tagger.net.frontend.mel.mel_scale.norm == "slaney"
    prediction = tagger.predict_file(read_manifest(manifest)["audio_path"].iloc[0])
    assert [name for name, _ in prediction.tags[:1]] and prediction.genre


def test_unfrozen_frontend_learns_at_its_own_low_rate(
    synthetic_manifest: Path, weights: Path, tmp_path: Path
) -> None:
    """``--model.frontend_lr_scale 0.1``: the pretrained filters move, ten times less than the
    mid-end (Adam's first step is ~lr per weight, so the largest moves compare the rates)."""
    cli = run_training(
        tmp_path,
        synthetic_manifest,
        "--model.backbone=musicnn",
        f"--model.pretrained={weights}",
        "--model.freeze=none",
        "--model.frontend_lr_scale=0.1",
        "--model.weight_decay=0",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
    )
    assert cli.trainer.global_step == 1 and cli.model.hparams.frontend_lr_scale == 0.1
    frontend = {id(p) for m in cli.model.net.backbone.frontend_modules() for p in m.parameters()}
    rates = {
        id(p): group["lr"]
        for group in cli.trainer.optimizers[0].param_groups
        for p in group["params"]
    }
    assert {rates[i] for i in frontend} == {min(rates.values())}
    assert max(rates.values()) == pytest.approx(10 * min(rates.values()))
    pretrained = torch.load(weights, weights_only=True)["state_dict"]
    trained = cli.model.net.backbone.state_dict()

    def largest_move(prefix: str) -> float:
        keys = [k for k in pretrained if k.startswith(prefix) and k.endswith(".weight")]
        return max((trained[k] - pretrained[k]).abs().max().item() for k in keys)

    ratio = largest_move("timbral.") / largest_move("midend.")
    assert 0.05 < ratio < 0.2, ratio
    with pytest.raises(ValueError, match="--model.frontend_lr_scale must be in"):
        MusicTagger(frontend_lr_scale=0.0)
