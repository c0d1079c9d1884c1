"""A checkpoint written before the typed spec (format 1, no ``format_version``) still loads and
predicts exactly what the code of its time predicted (fixture made by
``tests/fixtures/make_v1_fixture.py`` in a checkout of that code)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lightning_module.inference.checkpoint import load_checkpoint
from lightning_module.inference.tagger import Tagger
from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec, upgrade
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures"
CKPT = FIXTURES / "v1_tiny.ckpt"
CLIP = FIXTURES / "v1_tiny_clip.flac"


#: Largest change of a probability or a 0-1 feature (tempo and loudness: x100) that the switch
#: of resampler (torchaudio sinc -> soxr HQ) made on the fixture clip: measured 0.003.
RESAMPLED = 0.005


def _close(now: dict, then: dict) -> None:
    assert now["start"] == then["start"] and now["windows"] == then["windows"]
    for task in ("genre", "mood", "tags"):
        got = {d["label"]: d["probability"] for d in now[task]}
        for d in then[task]:
            assert got[d["label"]] == pytest.approx(d["probability"], abs=RESAMPLED)
    for name, value in then["features"].items():
        scale = 100.0 if name in ("tempo", "loudness") else 1.0
        assert now["features"][name] == pytest.approx(value, abs=RESAMPLED * scale), name


def test_the_fixture_is_a_format_1_checkpoint() -> None:
    hparams = load_checkpoint(CKPT)["hyper_parameters"]
    assert "format_version" not in hparams
    assert TaggerSpec.from_hparams(hparams).format_version == FORMAT_VERSION


def test_a_format_1_checkpoint_predicts_what_it_predicted() -> None:
    expected = json.loads((FIXTURES / "v1_tiny_expected.json").read_text())
    tagger = Tagger.from_checkpoint(CKPT)

    def same_keys(now: dict, then: dict) -> dict:
        # Newer outputs add keys (feature_basis); the path is where the fixture was made.
        return {k: (then[k] if k == "path" else now[k]) for k in then}

    # The clip is 22.05 kHz: since decoding resamples with soxr instead of torchaudio's sinc
    # (the runtime needs no torch), the model hears a very slightly different 16 kHz signal
    # (different only near 8 kHz), so values agree to RESAMPLED, not to the last digit.
    timeline = [w.to_dict() for w in tagger.timeline(CLIP)]
    assert len(timeline) == len(expected["timeline"])
    for now, then in zip(timeline, expected["timeline"], strict=True):
        _close(same_keys(now, then), then)
    # The clip value is the mean of those windows, the end-aligned last one (3.5 s, half a hop
    # of new audio) weighted 0.5 since the fix that counts each stretch of audio once; the old
    # code gave it full weight.
    now = tagger.predict_file(CLIP).to_dict()
    assert same_keys(now, expected["prediction"]).keys() == expected["prediction"].keys()
    assert now["windows"] == expected["prediction"]["windows"] == len(timeline)
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.5])
    for name, value in now["features"].items():
        windows = np.array([w["features"][name] for w in expected["timeline"]])
        assert value == pytest.approx((windows * weights).sum() / weights.sum(), abs=RESAMPLED)
    basis = tagger.predict_file(CLIP).feature_basis
    assert set(basis) == set(expected["prediction"]["features"])
    assert all("not recorded" in b for b in basis.values())  # format 1 did not record it


def test_upgrade_fills_what_format_1_lacked_and_refuses_the_future() -> None:
    old = {"sample_rate": 16000, "genre_names": ["a"], "mel_scale": None}
    hp = upgrade(old)
    logmel = hp["logmel"]
    assert (logmel["mel_norm"], logmel["mel_scale"], hp["tag_names"], hp["channels_last"]) == (
        None,
        "htk",
        [],
        False,
    )
    assert hp["format_version"] == FORMAT_VERSION
    with pytest.raises(ValueError, match="newer than this code"):
        upgrade({**old, "format_version": FORMAT_VERSION + 1})


def test_format_3_hparams_upgrade_without_genre_tags() -> None:
    old = TaggerSpec(genre_names=("a", "b"), tag_names=("x",)).to_hparams()
    del old["genre_tag_names"]
    old["format_version"] = 3
    assert upgrade(old)["genre_tag_names"] == []  # format 3 had no genre-tag head
    spec = TaggerSpec.from_hparams(old)
    assert spec.genre_tag_names == () and spec.names("genre_tags") == ()
    assert spec.format_version == FORMAT_VERSION == 7 and spec.tag_names == ("x",)
    assert spec.backbone_members == ()  # format 6: no ensemble before it existed
    new = TaggerSpec.from_hparams({**spec.to_hparams(), "genre_tag_names": ["Jazz"]})
    assert new.genre_tag_names == ("Jazz",)


def test_spec_round_trips_through_plain_hparams() -> None:
    spec = TaggerSpec.from_hparams(load_checkpoint(CKPT)["hyper_parameters"])
    again = TaggerSpec.from_hparams(spec.to_hparams())
    assert again == spec
    assert spec.window_samples == 32000 and spec.genre_names == ("classical", "jazz", "rock")
    torch.testing.assert_close(torch.tensor(spec.feature_std[-2:]), torch.tensor([25.0, 4.0]))


def test_the_format_5_shipped_student_predicts_what_it_predicted() -> None:
    """audiotagger-student@1.1.0 (format 5, before ensembles and 11 genres), kept as a fixture,
    gives the prediction recorded with the code it shipped with (commit c653073)."""
    ckpt = FIXTURES / "v5_student_1.1.0.ckpt"
    expected = json.loads((FIXTURES / "v5_student_1.1.0_expected.json").read_text())
    assert load_checkpoint(ckpt)["hyper_parameters"]["format_version"] == 5
    now = Tagger.from_checkpoint(ckpt).predict_file(CLIP).to_dict()
    assert {k: now[k] for k in ("windows", "key", "mode", "camelot")} == {
        k: expected[k] for k in ("windows", "key", "mode", "camelot")
    }
    for task in ("genre", "mood", "tags"):
        assert now[task] == expected[task], task
    assert now["genre_tags"] == expected["genre_tags"]
    assert now["features"] == pytest.approx(expected["features"], abs=1e-6)
    assert now["feature_basis"] == expected["feature_basis"]
