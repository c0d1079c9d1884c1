"""Cleaning what a source listed: labels through ``label_map``, values to finite floats, and tracks
listed more than once merged under one policy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import pandas as pd

from datamodules.builds import Skip, SourceError
from datamodules.manifest import FEATURES, genre_tag_columns
from datamodules.sources.items import Item, SourceConfig

LABEL_COLUMNS: tuple[str, ...] = ("genre", "mood")


def map_label(value: object, column: str, config: SourceConfig) -> str | None:
    """Clean a label and apply ``label_map``; empty/NaN -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if not text:
        return None
    if config.lowercase_labels:
        text = text.lower()
    mapping = config.label_map.get(column) or {}
    if text in mapping:
        mapped = mapping[text]
        return str(mapped).strip() or None if mapped is not None else None
    folded = {str(k).casefold(): v for k, v in mapping.items()}
    if text.casefold() in folded:
        mapped = folded[text.casefold()]
        return str(mapped).strip() or None if mapped is not None else None
    return None if config.only_mapped and mapping else text


def to_float(value: object) -> float | None:
    """A finite float, or None for empty/NaN/non-numeric values."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def has_label(row: Mapping[str, object]) -> bool:
    """A genre or mood, or multi-label genre tags (``genre_tag_<name>``)."""
    if any(row.get(c) not in (None, "") for c in LABEL_COLUMNS):
        return True
    return any(to_float(row[c]) is not None for c in genre_tag_columns(row))


def has_features(row: Mapping[str, object]) -> bool:
    return any(to_float(row.get(f)) is not None for f in FEATURES)


#: How a track listed twice with different labels (two moods' playlists, two tables) is resolved.
CONFLICT_POLICIES: tuple[str, ...] = ("majority", "first", "drop", "skip")


def merge_duplicates(
    items: list[Item], policy: str = "majority"
) -> tuple[list[Item], list[Skip], dict[str, int]]:
    """Merge items listed more than once under one track id.

    Other values: the first non-empty one wins (in listing order). A label column (genre, mood) with
    different values is resolved by ``policy``: ``majority`` (the label listed most often; a tie
    goes to the one listed first), ``first``, ``drop`` (label left empty, the row stays for its
    other labels and features) or ``skip`` (track left out). Returns (items, skips, notes) where
    notes count ``tracks listed twice`` and ``<column> conflicts``.
    """
    if policy not in CONFLICT_POLICIES:
        raise SourceError(f"conflict policy must be one of {', '.join(CONFLICT_POLICIES)}")
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.track_id, []).append(item)
    merged: list[Item] = []
    skips: list[Skip] = []
    notes: Counter[str] = Counter()
    for track_id, group in groups.items():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        notes["tracks listed twice"] += 1
        row: dict[str, object] = {}
        for other in group:
            for key, value in other.row.items():
                if row.get(key) in (None, "") and value not in (None, ""):
                    row[key] = value
        conflict = None
        for column in LABEL_COLUMNS:
            values = [str(o.row[column]) for o in group if o.row.get(column) not in (None, "")]
            if len(set(values)) <= 1:
                continue
            notes[f"{column} conflicts"] += 1
            counts = Counter(values)
            if policy == "majority":
                row[column] = max(counts, key=lambda v: (counts[v], -values.index(v)))
            elif policy == "first":
                row[column] = values[0]
            elif policy == "drop":
                row[column] = None
            else:
                conflict = f"{column}: {' / '.join(sorted(counts))}"
        if conflict:
            skips.append(Skip(track_id, "conflicting labels", conflict, first.name or ""))
            continue
        first.row = row
        first.url = first.url or next((o.url for o in group if o.url), None)
        first.audio = first.audio or next((o.audio for o in group if o.audio), None)
        merged.append(first)
    return merged, skips, dict(notes)
