"""The shipped model (package data): its files agree with each other, with model.json and with
the model card; the numpy/onnxruntime path answers as the PyTorch path on the same weights."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.io import file_sha256
from datamodules.synthetic import render_clip
from lightning_module.inference.checkpoint import load_checkpoint
from lightning_module.inference.runners import OnnxRunner
from lightning_module.inference.shipped import (
    ShippedModelError,
    shipped_card,
    shipped_checkpoint,
    shipped_dir,
    shipped_info,
    shipped_onnx,
)
from lightning_module.inference.tagger import Tagger
from lightning_module.model.spec import TaggerSpec
from tests.conftest import REPO_ROOT, SHARED_DATA

#: numpy + onnxruntime against PyTorch, same weights, same windows: probabilities and
#: natural-unit features (BPM and dB included) within this.
PARITY_TOL = 2e-3


def test_ship_model_writes_consistent_files(trained_checkpoint: Path, tmp_path: Path) -> None:
    from lightning_module.inference.ship import WEIGHTS_LICENSE, ship_model

    info, report = ship_model(trained_checkpoint, "tiny", "0.0.1", tmp_path)
    assert report.ok
    slim = load_checkpoint(tmp_path / "tagger.ckpt")
    assert set(slim) == {"state_dict", "hyper_parameters"}  # no optimiser state
    assert (tmp_path / "tagger.ckpt").stat().st_size < trained_checkpoint.stat().st_size
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved == info and saved["weights_license"] == WEIGHTS_LICENSE
    for name, digest in saved["files"].items():
        assert file_sha256(tmp_path / name) == digest
    assert OnnxRunner(tmp_path / "model.onnx").hparams == slim["hyper_parameters"] or (
        TaggerSpec.from_hparams(OnnxRunner(tmp_path / "model.onnx").hparams)
        == TaggerSpec.from_hparams(slim["hyper_parameters"])
    )


@pytest.fixture(scope="module")
def shipped() -> Path:
    try:
        shipped_onnx()
    except ShippedModelError:
        pytest.skip("no shipped model in this checkout (make refit)")
    return shipped_dir()


def test_files_match_model_json(shipped: Path) -> None:
    info = shipped_info()
    assert set(info.files) == {"model.onnx", "tagger.ckpt"}
    for name, digest in info.files.items():
        assert file_sha256(shipped / name) == digest, name
    assert info.weights_license == "CC-BY-NC-SA-4.0"
    total = sum((shipped / name).stat().st_size for name in info.files)
    assert total < 10e6  # a few MB inside the wheel


def test_onnx_and_checkpoint_describe_one_model(shipped: Path) -> None:
    onnx_spec = TaggerSpec.from_hparams(OnnxRunner(shipped_onnx()).hparams)
    ckpt_spec = TaggerSpec.from_hparams(load_checkpoint(shipped_checkpoint())["hyper_parameters"])
    assert onnx_spec == ckpt_spec
    info = shipped_info()
    assert info.extra["genres"] == list(ckpt_spec.genre_names)
    assert info.extra["features"] == list(ckpt_spec.trained_features)
    assert not ckpt_spec.synthetic_only


def test_the_card_states_what_the_model_knows_and_its_terms(shipped: Path) -> None:
    card = shipped_card()
    spec = TaggerSpec.from_hparams(load_checkpoint(shipped_checkpoint())["hyper_parameters"])
    info = shipped_info()
    for name in (*spec.genre_names, *spec.mood_names, *spec.trained_features):
        assert f"`{name}`" in card, name
    assert f"{info.id}@{info.version}" in card
    assert "CC BY-NC-SA 4.0" in card and "not licensed for redistribution" in card
    assert (shipped / "LICENSE-weights.md").read_text().startswith("# ")
    readme = (REPO_ROOT / "README.md").read_text()
    assert "lightning_module/shipped/MODEL_CARD.md" in readme
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "lightning_module/shipped/LICENSE-weights.md" in pyproject["project"]["license-files"]


def _parity(path: Path) -> None:
    onnx = Tagger.from_onnx(shipped_onnx()).predict_file(path)
    torch_ = Tagger.from_checkpoint(shipped_checkpoint()).predict_file(path)
    assert onnx.windows == torch_.windows
    for task in ("genre", "mood"):
        a, b = dict(getattr(onnx, task)), dict(getattr(torch_, task))
        assert max(abs(a[k] - b[k]) for k in a) <= PARITY_TOL, task
    assert onnx.features.keys() == torch_.features.keys()
    for name, value in onnx.features.items():
        scale = 1.0 if name not in ("tempo", "loudness") else 100.0
        assert abs(value - torch_.features[name]) <= PARITY_TOL * scale, name


def test_numpy_path_matches_torch_path_on_generated_audio(shipped: Path, tmp_path: Path) -> None:
    samples, _ = render_clip("rock", "energetic", 20.0, 44100, np.random.default_rng(2))
    path = tmp_path / "song.flac"
    sf.write(path, np.stack([samples, 0.5 * samples], 1), 44100)
    _parity(path)


def test_numpy_path_matches_torch_path_on_real_clips(shipped: Path) -> None:
    clips = sorted((SHARED_DATA / "gtzan-samples").glob("*.wav"))[:3]
    clips += sorted((SHARED_DATA / "mood4q").glob("Q*/*.mp3"))[:2]
    if not clips:
        pytest.skip("../shared/data is absent")
    for clip in clips:
        _parity(clip)


def test_the_service_describes_the_shipped_model_with_its_card(shipped: Path) -> None:
    from lightning_module.serving.service import ServiceConfig, TaggingService

    service = TaggingService(ServiceConfig(model=shipped_onnx()))
    try:
        info = service.model_info()
    finally:
        service.close()
    assert info["shipped"]["model_id"] == shipped_info().model_id
    assert info["shipped"]["card"] == shipped_card()
    assert info["runner"] == "onnx" and not info["synthetic_only"]
