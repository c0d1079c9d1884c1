"""What the model learns, in plain values shared by data and model (no pandas, no torch).

The audio features (names, valid ranges, units), the class target of a row without a label, the
task spec the data module hands the model, the default window, and one helper both sides use.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

#: Spotify-style audio features, in the order the regression head predicts them.
FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "valence",
    "acousticness",
    "instrumentalness",
    "speechiness",
    "liveness",
    "tempo",
    "loudness",
)

#: Valid range of each feature in natural units (tempo in BPM, loudness in dB LUFS-like dBFS).
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in FEATURES[:7]},
    "tempo": (0.0, 300.0),
    "loudness": (-70.0, 6.0),
}

FEATURE_UNITS: dict[str, str] = {
    **{name: "" for name in FEATURES[:7]},
    "tempo": "BPM",
    "loudness": "dB",
}

#: Class target of a row without that label (its loss and metrics ignore it).
IGNORE_INDEX = -1
#: Default model window (training crop and inference window), seconds.
DEFAULT_CROP_SECONDS = 3.0


@dataclass
class TaskSpec:
    """What the model is built for: label names and feature statistics, all plain values.

    ``feature_mean``/``feature_std`` are train-split statistics in natural units; the regression
    head predicts standardised features and inference maps them back. ``feature_sources`` and
    ``train_sources`` say what the model learned from, so it never prints a feature it was not
    trained on and says when it only ever heard synthetic audio.
    """

    genre_names: list[str] = field(default_factory=list)
    mood_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=lambda: list(FEATURES))
    feature_mean: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    feature_std: list[float] = field(default_factory=lambda: [1.0] * len(FEATURES))
    tag_names: list[str] = field(default_factory=list)
    #: Per feature (in ``feature_names`` order): train rows with a value, by provenance
    #: (``human``, ``table``, ``synthetic``, ``teacher:<name>``).
    feature_sources: list[dict[str, int]] = field(default_factory=list)
    #: Train rows by the manifest's ``source`` column (``synthetic`` for the demo set).
    train_sources: dict[str, int] = field(default_factory=dict)
    #: Multi-label genre tags of the genre-tag head (``genre_tag_<name>`` manifest columns with
    #: enough positive and at least one negative train row), sorted by name.
    genre_tag_names: list[str] = field(default_factory=list)
    #: The key head's 24 keys (``datamodules.analysis.key.KEY_NAMES``) when train rows have a
    #: ``key`` column value; empty: no key head.
    key_names: list[str] = field(default_factory=list)


#: The task spec's fields: the data module's attributes the CLI links into the model.
TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TaskSpec))


def spread_evenly(n: int, k: int | None) -> list[int]:
    """``min(n, k)`` indices into ``range(n)``, evenly spread from the first to the last
    (``k`` None: all of them)."""
    if k is None or n <= k:
        return list(range(n))
    if k <= 1:
        return [0]
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]
