"""The typed groups (log-mel settings, loss weights): format-6 flat keys upgrade into them, the
spec round-trips through plain hyperparameters, and a change is said field by field. No model is
built here: every test is a few dict operations."""

from __future__ import annotations

import io
import json
from dataclasses import fields

import pytest
import torch

from lightning_module.model.backbones.musicnn import MUSICNN_FRONTEND
from lightning_module.model.backbones.registry import dictated_changes
from lightning_module.model.settings import LogMelSettings, LossWeights, changes_said
from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec, upgrade
from lightning_module.model.tasks import TASKS

#: What a format-6 checkpoint saved (flat keys, as MusicTagger's arguments were then).
FORMAT_6 = {
    "genre_names": ["jazz", "rock"],
    "sample_rate": 16000,
    "n_fft": 1024,
    "hop_length": 512,
    "n_mels": 64,
    "f_min": 20.0,
    "f_max": 7600.0,
    "compression": "db",
    "mel_norm": None,
    "mel_scale": "htk",
    "genre_weight": 1.0,
    "mood_weight": 0.8,
    "feature_weight": 0.5,
    "tag_weight": 1.0,
    "tempo_weight": 0.5,
    "genre_tag_weight": 0.25,
    "key_weight": 2.0,
    "distill_weight": 3.0,
    "lr": 0.003,
    "format_version": 6,
}


def test_a_format_6_checkpoint_upgrades_into_the_groups() -> None:
    hp = upgrade(FORMAT_6)
    assert hp["format_version"] == FORMAT_VERSION == 7
    assert hp["logmel"] == LogMelSettings(1024, 512, 64, 20.0, 7600.0, "db", None, "htk").to_dict()
    assert hp["loss_weights"] == {
        "genre": 1.0,
        "mood": 0.8,
        "features": 0.5,
        "tags": 1.0,
        "tempo": 0.5,
        "genre_tags": 0.25,
        "key": 2.0,
    }
    assert not {"n_mels", "hop_length", "genre_weight", "key_weight"} & set(hp)  # no flat keys
    assert hp["distill_weight"] == 3.0 and hp["lr"] == 0.003  # MusicTagger's own, untouched
    spec = TaggerSpec.from_hparams(FORMAT_6)
    assert spec.logmel == LogMelSettings.of(hp["logmel"])
    assert spec.loss_weights.weight("genre_tags") == 0.25 and spec.sample_rate == 16000


def test_a_file_without_weights_trained_with_all_ones() -> None:
    """ONNX metadata of formats 1-6 held the spec only: no weights; they read as the defaults."""
    no_weights = {k: v for k, v in FORMAT_6.items() if not k.endswith("_weight")}
    assert TaggerSpec.from_hparams(no_weights).loss_weights == LossWeights()


def test_spec_to_hparams_to_spec_is_identity_and_plain() -> None:
    spec = TaggerSpec.from_hparams(FORMAT_6)
    hparams = spec.to_hparams()
    assert isinstance(hparams["logmel"], dict) and isinstance(hparams["loss_weights"], dict)
    json.dumps(hparams)  # ONNX metadata is JSON
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": hparams}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["hyper_parameters"]  # no pickled dataclasses
    again = TaggerSpec.from_hparams(loaded)
    assert again == spec and again.loss_weights == spec.loss_weights  # == leaves weights out
    assert again.to_hparams() == hparams


def test_one_loss_weight_per_task_and_unknown_fields_are_named() -> None:
    assert [f.name for f in fields(LossWeights)] == [t.name for t in TASKS]
    with pytest.raises(TypeError, match="unknown LogMelSettings field.*n_bands"):
        LogMelSettings.of({"n_bands": 64})
    with pytest.raises(TypeError, match="unknown LossWeights field.*genre_weight"):
        TaggerSpec.from_hparams({"loss_weights": {"genre_weight": 1.0}, "format_version": 7})


def test_dictated_changes_replace_the_group_and_say_each_field() -> None:
    ours = {"sample_rate": 16000, "logmel": LogMelSettings(n_mels=64).to_dict(), "embed_dim": 128}
    changed = dictated_changes("musicnn", ours)
    assert changed == {"logmel": MUSICNN_FRONTEND.to_dict(), "embed_dim": 200}
    assert changes_said(ours, changed) == [
        "logmel.n_mels=96",
        "logmel.compression=log1p",
        "logmel.mel_norm=slaney",
        "logmel.mel_scale=slaney",
        "embed_dim=200",
    ]
    assert dictated_changes("musicnn", {**ours, **changed}) == {}
