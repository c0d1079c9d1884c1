"""What to write: the options of a run, the fields a user selects, and the texts a prediction
gives for each logical field.

Logical fields (each mapped to a format's own key by :meth:`.tag_fields.TagFile.key`):

* standard, player-visible: ``genre`` (top genre, and the genre tags with ``--genre-tags
  genre``), ``mood``, ``bpm`` (an integer), ``key`` (``Am`` or ``8A``), ``style`` / ``grouping``
  (the genre tags with ``--genre-tags style|grouping``);
* ours (``AUDIOTAGGER_<NAME>``): every feature (``tempo`` is the exact BPM, 2 decimals),
  ``genre_tags`` and ``tags`` (the AllMusic genre tags and the tag head's tags above their
  thresholds, several values), ``key_confidence`` and ``camelot``; and the provenance fields
  ``model``, ``version`` and ``written`` (see :mod:`.write_tags`).

What a user names with ``--fields`` (:data:`SELECTABLE`) expands to logical fields
(:func:`field_scope`); a field outside the scope is left exactly as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from datamodules.schema import FEATURE_UNITS
from lightning_module.library.musical_key import NOTATIONS, key_of

#: Default of ``--min-probability``: genre/mood go into the standard fields at this or above.
MIN_PROBABILITY = 0.5
#: Default of ``--genre-tag-threshold``: AllMusic genre tags at or above this probability are
#: written (the head learned them as independent yes/no labels, several per clip).
GENRE_TAG_THRESHOLD = 0.5
#: Default of ``--tag-threshold`` for the tag head's (musicnn's) tags. Lower, because musicnn
#: learned MagnaTagATune's sparse annotations and its probabilities are low: on 29 real clips
#: (4Q and GTZAN, shipped model) 24 had no tag at 0.5, at 0.2 a clip had 1.2 on average and 3
#: had none (docs/tag_your_library.md).
TAG_THRESHOLD = 0.2
#: Fields of ours that are not features (a feature of that name would be skipped).
RESERVED = frozenset({"model", "version", "written"})
#: How genre labels are spelled in the genre field (others: title case).
GENRE_SPELLING = {"hiphop": "Hip-Hop", "rnb": "R&B", "edm": "EDM", "idm": "IDM"}
#: Fields that may hold several values and follow ``--genre-mode``.
MULTI_FIELDS = ("genre", "style", "grouping")
GENRE_MODES = ("keep", "replace", "append")
#: Where the genre tags go besides our own ``AUDIOTAGGER_GENRE_TAGS`` (``none``: only there).
GENRE_TAG_TARGETS = ("genre", "style", "grouping", "none")
#: What ``--fields`` accepts besides a feature's name, and the logical fields each stands for
#: (``genre_tags`` adds its ``--genre-tags`` target; ``genre`` and ``genre_tags`` select each
#: other when they share the genre field).
SELECTABLE = {
    "genre": ("genre",),
    "mood": ("mood",),
    "bpm": ("bpm", "tempo"),
    "key": ("key", "key_confidence", "camelot"),
    "genre_tags": ("genre_tags",),
    "tags": ("tags",),
    "features": tuple(FEATURE_UNITS),
}


@dataclass(frozen=True)
class WriteOptions:
    """How to write.

    ``model`` names the model in our fields (``audiotagger-student@1.0.0``; ``... (synthetic
    demo)`` for a model trained only on the synthetic demo set); ``version`` the program.
    ``fields``: the names given to ``--fields`` (None: everything). ``genre_mode``: how the
    multi-value fields (:data:`MULTI_FIELDS`) treat the user's values (None: ``replace`` with
    ``overwrite``, else ``keep``); ``overwrite`` decides for the other standard fields.
    """

    min_probability: float = MIN_PROBABILITY
    overwrite: bool = False
    touch: bool = False
    verify: str = "decode"  # how the audio is checked: "decode" (samples) or "packets"
    model: str = "unknown"
    version: str = "unknown"
    fields: tuple[str, ...] | None = None
    genre_mode: str | None = None
    genre_tags_to: str = "genre"
    genre_tag_threshold: float = GENRE_TAG_THRESHOLD
    tag_threshold: float = TAG_THRESHOLD
    key_notation: str = "standard"
    min_key_confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.genre_mode is not None and self.genre_mode not in GENRE_MODES:
            raise ValueError(f"--genre-mode must be one of {', '.join(GENRE_MODES)}")
        if self.genre_tags_to not in GENRE_TAG_TARGETS:
            raise ValueError(f"--genre-tags must be one of {', '.join(GENRE_TAG_TARGETS)}")
        if self.key_notation not in NOTATIONS:
            raise ValueError(f"--key-notation must be one of {', '.join(NOTATIONS)}")
        if self.fields is not None:
            field_scope(self.fields, self.genre_tags_to)  # unknown names fail here, at once

    def mode_of(self, logical: str) -> str:
        """``keep``, ``replace`` or ``append``: how a standard field the user set is treated."""
        if logical in MULTI_FIELDS and self.genre_mode is not None:
            return self.genre_mode
        return "replace" if self.overwrite else "keep"

    def scope(self) -> frozenset[str] | None:
        """The logical fields this run may change (None: all)."""
        return None if self.fields is None else field_scope(self.fields, self.genre_tags_to)

    def signature(self) -> dict[str, Any]:
        """Everything that decides what a run writes: equal signatures write the same fields."""
        settings = asdict(self)
        for name in ("touch", "verify"):  # how, not what
            settings.pop(name)
        settings["fields"] = sorted(self.fields) if self.fields is not None else None
        return settings


def parse_fields(text: str) -> tuple[str, ...]:
    """``bpm,key, mood`` → ``("bpm", "key", "mood")``.

    Raises:
        ValueError: an unknown name (one line naming it and the known ones), or none at all.
    """
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("--fields: no field named")
    field_scope(names, "none")
    return names


def field_scope(names: Iterable[str], genre_tags_to: str) -> frozenset[str]:
    """The logical fields ``names`` (what ``--fields`` lists) stand for."""
    scope: set[str] = set()
    known = sorted({*SELECTABLE, *FEATURE_UNITS})
    for name in names:
        if name in SELECTABLE:
            scope.update(SELECTABLE[name])
        elif name in FEATURE_UNITS:
            scope.add(name)
        else:
            raise ValueError(f"--fields: unknown field {name!r} (known: {', '.join(known)})")
    if genre_tags_to != "none" and "genre_tags" in scope:
        scope.add(genre_tags_to)
    if genre_tags_to == "genre" and "genre" in scope:  # one field holds both
        scope.add("genre_tags")
    return frozenset(scope)


# -- texts -----------------------------------------------------------------------------------
def feature_text(name: str, value: float) -> str:
    """A feature as written: 0-1 features to 3 decimals, loudness (dB) to 1, tempo (BPM) to 2
    (the exact value beside the integer BPM field)."""
    unit = FEATURE_UNITS.get(name)
    if unit is None:
        return f"{value:.4g}"
    if name == "tempo":
        return f"{value:.2f}"
    return f"{value:.1f}" if unit else f"{value:.3f}"


def genre_label(name: str) -> str:
    """``hiphop`` → ``Hip-Hop``, ``rock`` → ``Rock``; AllMusic names stay as they are."""
    if any(c.isupper() for c in name):
        return name
    return GENRE_SPELLING.get(name.lower(), name.replace("_", " ").title())


def ranked(items: Any) -> list[tuple[str, float]]:
    """(label, probability) pairs, most probable first, from any form a prediction holds them
    in: ``[{"label", "probability"}]``, ``[(label, p)]`` or ``{label: p}``."""
    if not items:
        return []
    if isinstance(items, Mapping):
        pairs = [(str(k), float(v)) for k, v in items.items()]
    else:
        pairs = [
            (str(i["label"]), float(i["probability"]))
            if isinstance(i, Mapping)
            else (str(i[0]), float(i[1]))
            for i in items
        ]
    return sorted(pairs, key=lambda pair: -pair[1])


def _unique(texts: Iterable[str]) -> list[str]:
    """In order, without a case-insensitive repeat (``Jazz`` and ``jazz`` are one genre)."""
    seen: set[str] = set()
    out = []
    for text in texts:
        if text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def desired_fields(prediction: Mapping[str, Any], options: WriteOptions) -> dict[str, list[str]]:
    """Logical field → texts to write, from a prediction in :meth:`ClipPrediction.to_dict`
    form (or a results record). Only what the prediction holds: no genre/mood below
    ``min_probability``, no BPM without a ``tempo``, no key without ``key``/``mode``, no
    feature the model left out.

    Raises:
        ValueError: a malformed key (see :func:`.musical_key.key_of`).
    """
    out: dict[str, list[str]] = {}
    for task in ("genre", "mood"):
        top = ranked(prediction.get(task))[:1]
        if top and top[0][1] >= options.min_probability:
            out[task] = [genre_label(top[0][0])]
    genre_tags = [
        name for name, p in ranked(prediction.get("genre_tags")) if p >= options.genre_tag_threshold
    ]
    if genre_tags:
        out["genre_tags"] = genre_tags
        if options.genre_tags_to != "none":
            target = options.genre_tags_to
            out[target] = _unique([*out.get(target, []), *genre_tags])
    tags = [name for name, p in ranked(prediction.get("tags")) if p >= options.tag_threshold]
    if tags:
        out["tags"] = tags
    key = key_of(prediction)
    if key is not None:
        if key.confidence is None or key.confidence >= options.min_key_confidence:
            out["key"] = [key.notation(options.key_notation)]
        out["camelot"] = [key.camelot]
        if key.confidence is not None:
            out["key_confidence"] = [f"{key.confidence:.3f}"]
    features = prediction.get("features") or {}
    tempo = features.get("tempo")
    if tempo is not None and math.isfinite(float(tempo)) and float(tempo) > 0:
        # The standard field is the integer players and ID3's TBPM want; the exact value is
        # our own AUDIOTAGGER_TEMPO (a feature, below).
        out["bpm"] = [str(int(round(float(tempo))))]
    for name, value in features.items():
        if name in RESERVED or name in out or value is None:
            continue
        if math.isfinite(float(value)):
            out[name] = [feature_text(name, float(value))]
    return out
