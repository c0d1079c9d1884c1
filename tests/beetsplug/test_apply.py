"""One prediction applied to a real (unsaved) beets Item: beets' own types spell the values.

The key head is not in the shipped model yet, so its fields come here as a prediction record
(the ``ClipPrediction.to_dict()`` form with ``key``/``mode``/``key_confidence``/``camelot``)."""

from __future__ import annotations

import pytest

library = pytest.importorskip("beets.library")

from lightning_module.beets_plugin.fields import BeetsOptions  # noqa: E402
from lightning_module.beets_plugin.tagging import apply_prediction  # noqa: E402

PREDICTION = {
    "genre": [{"label": "rock", "probability": 0.9}],
    "mood": [{"label": "sad", "probability": 0.7}],
    "features": {"energy": 0.25, "tempo": 84.6},
    "key": "Eb",
    "mode": "minor",
    "key_confidence": 0.8,
    "camelot": "2A",
}


def test_key_mode_and_tempo_land_in_beets_fields() -> None:
    item = library.Item(title="song")
    changed, kept = apply_prediction(item, PREDICTION, BeetsOptions(), "m@1")
    assert changed and kept == []
    assert item.bpm == 85 and item.initial_key == "D#m"  # beets spells Eb minor D#m
    assert item.genres == ["Rock"] and item.mood == "Sad"
    assert item["audiotagger_key"] == "Eb minor" and item["audiotagger_camelot"] == "2A"
    assert item["audiotagger_key_confidence"] == 0.8 and item["audiotagger_model"] == "m@1"
    # the same prediction again: nothing changes
    assert apply_prediction(item, PREDICTION, BeetsOptions(), "m@1") == (False, [])


def test_camelot_notation_and_a_users_key() -> None:
    item = library.Item(title="song")
    apply_prediction(item, PREDICTION, BeetsOptions(key_notation="camelot"), "m@1")
    assert item.initial_key.upper() == "2A"
    mine = library.Item(title="song", initial_key="F#m", bpm=140)
    changed, kept = apply_prediction(mine, PREDICTION, BeetsOptions(), "m@1")
    assert sorted(kept) == ["bpm", "initial_key"] and (mine.initial_key, mine.bpm) == ("F#m", 140)
    apply_prediction(mine, PREDICTION, BeetsOptions(), "m@1", force=True)
    assert (mine.initial_key, mine.bpm) == ("D#m", 85)


def test_a_model_without_a_key_clears_only_the_key_it_wrote() -> None:
    item = library.Item(title="song")
    apply_prediction(item, PREDICTION, BeetsOptions(), "m@1")
    no_key = {k: v for k, v in PREDICTION.items() if k not in ("key", "mode", "camelot")}
    apply_prediction(item, no_key, BeetsOptions(), "m@2")
    assert not item.initial_key
    assert "audiotagger_key" not in item and "audiotagger_camelot" not in item


def test_a_model_that_cannot_be_used_is_one_line_naming_the_setting(tmp_path) -> None:
    from lightning_module.beets_plugin.model import ModelLoadError, ModelRef

    with pytest.raises(FileNotFoundError, match=r"^audiotagger.model: .*nope.onnx: no such model"):
        ModelRef(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    model = ModelRef(bad)
    assert model.base_id.startswith("bad.onnx sha256:")
    with pytest.raises(ModelLoadError, match=r"^audiotagger.model: .*bad.onnx: not a readable"):
        model.tagger  # noqa: B018 (loading is the point)
