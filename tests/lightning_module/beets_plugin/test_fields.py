"""The rules that turn a prediction into beets fields (pure functions, no beets needed)."""

from __future__ import annotations

import pytest

from lightning_module.beets_plugin.fields import (
    BeetsOptions,
    desired_values,
    key_values,
    plan_standard,
)

PREDICTION = {
    "genre": [{"label": "rock", "probability": 0.8}, {"label": "pop", "probability": 0.1}],
    "mood": [{"label": "calm", "probability": 0.4}],
    "features": {"energy": 0.81234, "tempo": 127.6, "loudness": -7.234},
    "genre_tags": {"Pop/Rock": 0.9, "Electronic": 0.2, "Rap": 0.55},
}


def test_values_without_a_key_head_give_no_key() -> None:
    standard, flex = desired_values(PREDICTION, BeetsOptions(), "m@1")
    assert key_values(PREDICTION) is None
    assert "initial_key" not in standard
    assert not [k for k in flex if "key" in k or "camelot" in k]


def test_values_from_a_prediction() -> None:
    standard, flex = desired_values(PREDICTION, BeetsOptions(), "audiotagger-student@1.0.0")
    # mood below min_probability: only our attribute, not beets' field
    assert standard == {"genre": ["Rock"], "bpm": 128}
    assert flex["audiotagger_mood"] == "Calm" and flex["audiotagger_mood_probability"] == 0.4
    assert flex["audiotagger_energy"] == 0.812  # 0-1 features: 3 decimals
    assert flex["audiotagger_tempo"] == 127.6 and flex["audiotagger_loudness"] == -7.2
    assert flex["audiotagger_genre_tags"] == "Pop/Rock; Rap"  # threshold 0.5, most probable first
    assert flex["audiotagger_model"] == "audiotagger-student@1.0.0"


def test_genre_tags_as_the_genre_and_a_subset_of_fields() -> None:
    options = BeetsOptions(fields=("genre",), genre_source="tags", genre_tags_threshold=0.15)
    standard, _ = desired_values(PREDICTION, options, "m")
    assert standard == {"genre": ["Pop/Rock", "Rap", "Electronic"]}


@pytest.mark.parametrize(
    ("notation", "confidence", "expected"),
    [("standard", 0.9, "Ebm"), ("camelot", 0.9, "2A"), ("standard", 0.2, None),
     ("standard", None, "Ebm")],
)  # fmt: skip
def test_key_into_initial_key(notation: str, confidence: float | None, expected: str) -> None:
    prediction = {**PREDICTION, "key": "Eb", "mode": "minor", "key_confidence": confidence}
    standard, flex = desired_values(prediction, BeetsOptions(key_notation=notation), "m")
    assert standard.get("initial_key") == expected
    assert flex["audiotagger_key"] == "Eb minor" and flex["audiotagger_camelot"] == "2A"


def test_sharps_are_read_and_a_wrong_camelot_code_is_refused() -> None:
    key = key_values({"key": "D#", "mode": "major", "camelot": "5B"})
    assert key is not None and key["standard"] == "Eb" and key["camelot"] == "5B"
    with pytest.raises(ValueError, match="camelot"):
        key_values({"key": "A", "mode": "minor", "camelot": "3B"})


def test_user_values_survive_ours_are_updated() -> None:
    fields = ("bpm", "mood", "genres", "initial_key")
    current = {"bpm": 99, "mood": "Happy", "genres": ["Post-Rock", "Shoegaze"], "initial_key": ""}
    written = {"mood": "Happy"}  # an earlier run wrote this mood
    wanted = {"bpm": 128, "mood": "Calm", "genres": ["Rock"], "initial_key": "Am"}
    changes, kept = plan_standard(current, wanted, written, fields)
    assert changes == {"mood": "Calm", "initial_key": "Am"}
    assert sorted(kept) == ["bpm", "genres"]
    changes, kept = plan_standard(current, wanted, written, fields, force=True)
    assert changes == wanted and kept == []


def test_our_value_is_cleared_when_the_model_gives_none_but_a_users_is_not() -> None:
    current = {"mood": "Calm", "bpm": 99}
    changes, _ = plan_standard(current, {}, {"mood": "Calm"}, ("mood", "bpm"))
    assert changes == {"mood": None}


def test_a_wrong_setting_names_the_config_key() -> None:
    with pytest.raises(ValueError, match="audiotagger.key_notation"):
        BeetsOptions(key_notation="open key")
    with pytest.raises(ValueError, match="audiotagger.fields: unknown style"):
        BeetsOptions(fields=("genre", "style"))
