"""What one prediction puts into a beets item: beets' own fields and our flexible attributes.

Pure functions on plain values (no beets import), so the rules are tested without a library:

* **beets' own fields** (:data:`STANDARD_FIELDS`, chosen by ``fields``): ``genre`` (the model's
  top genre, or the AllMusic genre tags above a threshold, as a list), ``mood`` (top mood),
  ``bpm`` (the ``tempo`` feature, rounded to an integer) and ``initial_key`` (from the key head's
  ``key``/``mode``, when the model has one). Genre, mood and key only when the model is at least
  ``min_probability`` sure. A value the user set is never replaced unless ``force``: the
  ``written`` record (:func:`plan_standard`) says which values are ours.
* **our flexible attributes**, all named :data:`PREFIX` + a logical name: every feature the model
  was trained on (``audiotagger_energy``, ``audiotagger_tempo`` in BPM, ``audiotagger_loudness``
  in dB), the top genre and mood with their probabilities, the genre tags above the threshold,
  the key, and the model id (``audiotagger_model``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamodules.schema import FEATURE_UNITS
from lightning_module.library.musical_key import NOTATIONS, key_of
from lightning_module.library.tag_values import GENRE_TAG_THRESHOLD, MIN_PROBABILITY
from lightning_module.library.tag_values import genre_label as _label
from lightning_module.library.tag_values import ranked as _ranked

#: Every flexible attribute we own starts with this (file tags: ``AUDIOTAGGER_<NAME>``).
PREFIX = "audiotagger_"
#: The flexible attribute naming the model that made the values (its id and provenance).
MODEL_FIELD = PREFIX + "model"
#: Which of beets' own fields hold our values (JSON), so a later run tells ours from the user's.
WRITTEN_FIELD = PREFIX + "written"
#: beets' own fields we may fill, by their logical name (``genre`` is beets' ``genres`` list).
STANDARD_FIELDS = ("genre", "mood", "bpm", "initial_key")
#: Defaults as ``write-tags`` has them: certainty for genre, mood and key in beets' fields, and
#: the threshold of a genre tag (sigmoid probability) to count as one of the song's genres.
GENRE_TAGS_THRESHOLD = GENRE_TAG_THRESHOLD
GENRE_SOURCES = ("top", "tags")
KEY_NOTATIONS = NOTATIONS


@dataclass(frozen=True)
class BeetsOptions:
    """How a prediction becomes beets fields (the plugin's configuration).

    Args:
        fields: which of :data:`STANDARD_FIELDS` to fill.
        min_probability: genre, mood and key go into beets' fields at this certainty or above.
        genre_source: ``top`` (the model's top genre) or ``tags`` (the AllMusic genre tags at or
            above ``genre_tags_threshold``, most probable first: a multi-value genre).
        genre_tags_threshold: the genre tags kept (in ``genre`` and ``audiotagger_genre_tags``).
        key_notation: ``initial_key`` as ``standard`` (``Am``, ``C#``) or ``camelot`` (``8A``).
    """

    fields: tuple[str, ...] = STANDARD_FIELDS
    min_probability: float = MIN_PROBABILITY
    genre_source: str = "top"
    genre_tags_threshold: float = GENRE_TAGS_THRESHOLD
    key_notation: str = "standard"

    def __post_init__(self) -> None:
        # The messages name the configuration key, as a beets user writes it.
        unknown = [f for f in self.fields if f not in STANDARD_FIELDS]
        if unknown:
            raise ValueError(
                f"audiotagger.fields: unknown {', '.join(unknown)} "
                f"(choose from {', '.join(STANDARD_FIELDS)})"
            )
        if self.genre_source not in GENRE_SOURCES:
            raise ValueError(f"audiotagger.genre_source: {self.genre_source!r} is not top or tags")
        if self.key_notation not in KEY_NOTATIONS:
            raise ValueError(
                f"audiotagger.key_notation: {self.key_notation!r} is not standard or camelot"
            )
        for name in ("min_probability", "genre_tags_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"audiotagger.{name}: {value} is not between 0 and 1")


# -- labels and keys ---------------------------------------------------------------------------
def genre_label(name: str) -> str:
    """A genre as beets' genre field spells it: ``rock`` -> ``Rock``, ``hiphop`` -> ``Hip-Hop``
    (as ``write-tags`` spells it in the files)."""
    return _label(name)


def key_values(prediction: Mapping[str, Any]) -> dict[str, Any] | None:
    """The key of a prediction that has one (the key head's ``key``, ``mode``,
    ``key_confidence``, ``camelot``, read by :func:`~lightning_module.library.musical_key.key_of`):
    ``{"standard": "Am", "camelot": "8A", "name": "A minor", "confidence": 0.71}`` (confidence
    None when the record has none); None without a key head (the shipped model
    ``audiotagger-student@1.0.0`` has none).

    Raises:
        ValueError: a malformed key (one line naming the field).
    """
    key = key_of(prediction)
    if key is None:
        return None
    return {
        "standard": key.standard,
        "camelot": key.camelot,
        "name": f"{key.tonic} {key.mode}",
        "confidence": key.confidence,
    }


# -- what a prediction says ----------------------------------------------------------------------
def feature_value(name: str, value: float) -> float:
    """A feature as stored: 0-1 features to 3 decimals, BPM and dB to 1 (as files get them)."""
    return round(value, 1 if FEATURE_UNITS.get(name) else 3)


def desired_values(
    prediction: Mapping[str, Any], options: BeetsOptions, model_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(beets' own fields, our flexible attributes) from a prediction in
    ``ClipPrediction.to_dict()`` form.

    The first maps each logical field in ``options.fields`` the prediction supports to its value
    (``genre``: list of str; ``mood``, ``initial_key``: str; ``bpm``: int); a field left out means
    the model gives nothing sure enough. The second maps ``audiotagger_<name>`` to a float or str.
    """
    standard: dict[str, Any] = {}
    flex: dict[str, Any] = {MODEL_FIELD: model_id}
    features = prediction.get("features") or {}
    for name, value in features.items():
        if value is not None and math.isfinite(float(value)):
            flex[PREFIX + name] = feature_value(name, float(value))
    for task in ("genre", "mood"):
        ranked = _ranked(prediction.get(task))
        if ranked:
            label, probability = ranked[0]
            flex[PREFIX + task] = genre_label(label)
            flex[PREFIX + task + "_probability"] = round(probability, 3)
            if probability >= options.min_probability:
                standard[task] = genre_label(label)
    tags = [
        name
        for name, p in _ranked(prediction.get("genre_tags"))
        if p >= options.genre_tags_threshold
    ]
    if tags:
        flex[PREFIX + "genre_tags"] = "; ".join(tags)
    if options.genre_source == "tags":
        standard.pop("genre", None)
        if tags:
            standard["genre"] = tags
    elif "genre" in standard:
        standard["genre"] = [standard["genre"]]
    tempo = features.get("tempo")
    if tempo is not None and math.isfinite(float(tempo)) and float(tempo) > 0:
        standard["bpm"] = int(round(float(tempo)))
    key = key_values(prediction)
    if key is not None:
        flex[PREFIX + "key"] = key["name"]
        flex[PREFIX + "camelot"] = key["camelot"]
        if key["confidence"] is not None:
            flex[PREFIX + "key_confidence"] = round(key["confidence"], 3)
        if key["confidence"] is None or key["confidence"] >= options.min_probability:
            standard["initial_key"] = key[options.key_notation]
    return {k: v for k, v in standard.items() if k in options.fields}, flex


# -- ours or the user's -----------------------------------------------------------------------
def is_set(value: Any) -> bool:
    """Whether a beets field holds a value (beets' empty values: None, "", 0, [])."""
    return value not in (None, "", 0, [], ())


def plan_standard(
    current: Mapping[str, Any],
    wanted: Mapping[str, Any],
    written: Mapping[str, Any],
    fields: tuple[str, ...],
    force: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Which of beets' own fields to change: ``({field: new value or None to clear}, fields
    left as the user set them)``.

    ``current`` holds the item's values, ``wanted`` what the prediction gives
    (:func:`desired_values`), ``written`` the values an earlier run wrote. A field is ours when
    it still holds exactly what we wrote; ours are updated (or cleared when the model no longer
    gives one); an empty field is filled; a value the user set is kept unless ``force``.
    """
    changes: dict[str, Any] = {}
    kept: list[str] = []
    for field in fields:
        now, new = current.get(field), wanted.get(field)
        ours = field in written and _same(written[field], now)
        if new is None:
            if ours and is_set(now):
                changes[field] = None
        elif _same(now, new):
            continue
        elif not is_set(now) or ours or force:
            changes[field] = new
        else:
            kept.append(field)
    return changes, kept


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b
