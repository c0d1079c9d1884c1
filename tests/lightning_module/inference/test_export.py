"""lightning_module.inference.export on a model with every head (tags too), untrained."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from lightning_module.inference.export import TOLERANCE, export_onnx
from lightning_module.inference.tagger import Tagger
from lightning_module.model.settings import LogMelSettings
from lightning_module.training.module import MusicTagger


def test_tag_head_is_exported_and_matches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MusicTagger(
        genre_names=["a", "b", "c"],
        mood_names=["calm", "happy"],
        feature_names=["energy", "tempo"],
        feature_mean=[0.5, 120.0],
        feature_std=[0.2, 20.0],
        tag_names=["guitar", "piano", "voice"],
        crop_seconds=1.0,
        logmel=LogMelSettings(n_mels=32),
        width=4,
        embed_dim=16,
    )
    hparams = dict(model.hparams)
    report = export_onnx(model.net, hparams, tmp_path / "tags.onnx")
    assert report.ok and report.outputs == ("genre", "mood", "features", "tags", "embedding")
    assert all(v <= TOLERANCE for v in report.max_abs_diff.values())
    assert "tolerance 0.001" in report.summary() and "OK" in report.summary()
    model_proto = onnx.load(str(tmp_path / "tags.onnx"))
    assert [o.name for o in model_proto.graph.output] == list(report.outputs)
    assert not list(tmp_path.glob("*.tmp*"))  # written to a temp name, then renamed
    onnx_tagger = Tagger.from_file(tmp_path / "tags.onnx")
    torch_tagger = Tagger(model.net, hparams)
    wave = 0.1 * torch.randn(int(2.7 * 16000))
    a, b = onnx_tagger.predict_waveform(wave), torch_tagger.predict_waveform(wave)
    assert [n for n, _ in a.tags] == [n for n, _ in b.tags] and len(a.tags) == 3
    for (_, pa), (_, pb) in zip(a.tags + a.genre + a.mood, b.tags + b.genre + b.mood, strict=True):
        assert abs(pa - pb) < 1e-4


def test_genre_tag_head_is_exported_and_matches(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = MusicTagger(
        genre_names=["a", "b"],
        genre_tag_names=["Jazz", "Pop/Rock", "R&B"],
        crop_seconds=1.0,
        logmel=LogMelSettings(n_mels=32),
        width=4,
        embed_dim=16,
    )
    hparams = dict(model.hparams)
    report = export_onnx(model.net, hparams, tmp_path / "genre_tags.onnx")
    assert report.ok and report.outputs == ("genre", "genre_tags", "embedding")
    onnx_tagger = Tagger.from_file(tmp_path / "genre_tags.onnx")
    torch_tagger = Tagger(model.net, hparams)
    wave = 0.1 * torch.randn(int(2.7 * 16000))
    a, b = onnx_tagger.predict_waveform(wave), torch_tagger.predict_waveform(wave)
    assert list(a.genre_tags) == list(b.genre_tags) and len(a.genre_tags) == 3
    for name, p in b.genre_tags.items():
        assert abs(a.genre_tags[name] - p) < 1e-4


def test_mobilenet_student_is_exported_and_matches(tmp_path: Path) -> None:
    """The shipped student's backbone (1.4.0: MobileNet) exports within tolerance."""
    torch.manual_seed(2)
    model = MusicTagger(
        genre_names=["a", "b", "c"],
        mood_names=["calm", "happy"],
        feature_names=["energy", "loudness"],
        feature_mean=[0.5, -12.0],
        feature_std=[0.2, 4.0],
        crop_seconds=1.0,
        logmel=LogMelSettings(n_mels=32),
        backbone="mobilenet",
        width=8,
        embed_dim=16,
    )
    model.eval()
    hparams = dict(model.hparams)
    report = export_onnx(model.net, hparams, tmp_path / "mobilenet.onnx")
    assert report.ok and report.outputs == ("genre", "mood", "features", "embedding")
    assert all(v <= TOLERANCE for v in report.max_abs_diff.values())
    onnx_tagger = Tagger.from_file(tmp_path / "mobilenet.onnx")
    torch_tagger = Tagger(model.net, hparams)
    wave = 0.1 * torch.randn(int(2.7 * 16000))
    a, b = onnx_tagger.predict_waveform(wave), torch_tagger.predict_waveform(wave)
    for (_, pa), (_, pb) in zip(a.genre + a.mood, b.genre + b.mood, strict=True):
        assert abs(pa - pb) < 1e-4
    for name, value in b.features.items():
        assert abs(a.features[name] - value) <= 1e-3 * max(1.0, abs(value))
