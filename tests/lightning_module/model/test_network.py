from __future__ import annotations

import torch

from datamodules.manifest import FEATURES
from lightning_module.model.frontend import LogMel, SpecAugment
from lightning_module.model.losses import masked_cross_entropy, masked_mse
from lightning_module.model.settings import LogMelSettings
from lightning_module.training.module import MusicTagger


def _model(**kwargs) -> MusicTagger:
    return MusicTagger(
        genre_names=["a", "b", "c"],
        mood_names=["happy", "sad"],
        feature_names=list(FEATURES),
        width=8,
        embed_dim=16,
        logmel=LogMelSettings(n_mels=32),
        **kwargs,
    )


def test_forward_shapes() -> None:
    model = _model().eval()
    out = model(torch.randn(3, 16000))
    assert out["genre"].shape == (3, 3) and out["mood"].shape == (3, 2)
    assert out["features"].shape == (3, len(FEATURES)) and out["embedding"].shape == (3, 16)
    assert "tags" not in out and "genre_tags" not in out


def test_genre_tag_head_gives_one_logit_per_tag() -> None:
    model = _model(genre_tag_names=["Jazz", "Pop/Rock"]).eval()
    out = model(torch.randn(3, 16000))
    assert out["genre_tags"].shape == (3, 2)
    assert model.spec.names("genre_tags") == ("Jazz", "Pop/Rock")


def test_frontend_stays_float32_under_autocast() -> None:
    mel = LogMel(LogMelSettings(n_mels=32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = mel(torch.randn(2, 16000).bfloat16())
    assert spec.dtype == torch.float32 and spec.shape == (2, 1, 32, 16000 // 256 + 1)
    assert torch.isfinite(spec).all()


def test_spec_augment_only_in_training() -> None:
    aug = SpecAugment(freq_mask=8, time_mask=8, n_masks=2)
    spec = torch.randn(2, 1, 32, 50)
    assert torch.equal(aug.eval()(spec), spec)
    assert not torch.equal(aug.train()(spec), spec)


def test_masked_losses_ignore_missing_labels() -> None:
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]], requires_grad=True)
    assert masked_cross_entropy(logits, torch.tensor([-1, -1])).item() == 0.0
    only_first = masked_cross_entropy(logits, torch.tensor([0, -1]))
    assert torch.isclose(
        only_first, torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    )
    pred, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 100.0]])
    assert masked_mse(pred, target, torch.tensor([[True, False]])).item() == 1.0


def test_loss_is_finite_and_backpropagates_with_all_labels_missing() -> None:
    model = _model()
    batch = {
        "audio": torch.randn(2, 16000),
        "genre": torch.tensor([-1, -1]),
        "mood": torch.tensor([-1, 1]),
        "features": torch.zeros(2, len(FEATURES)),
        "feature_mask": torch.zeros(2, len(FEATURES), dtype=torch.bool),
        "tags": torch.zeros(2, 0),
        "tag_mask": torch.zeros(2, 0, dtype=torch.bool),
    }
    _, losses = model._step(batch, "train")
    assert losses["genre_loss"].item() == 0.0 and losses["feature_loss"].item() == 0.0
    losses["loss"].backward()
    assert model.net.heads.heads["mood"].weight.grad.abs().sum() > 0
    assert model.net.heads.heads["genre"].weight.grad.abs().sum() == 0
