"""Predictions as text for the terminal: a clip's summary, a timeline table, the model's notes.

Read by people, never parsed back (the formats read back are :mod:`.results`).
"""

from __future__ import annotations

from collections.abc import Sequence

from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.decoders import DECODERS
from lightning_module.inference.formats.csv_rows import top_genre_tags
from lightning_module.inference.prediction import ClipPrediction
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS

#: Columns of the timeline table: (feature, header).
TIMELINE_FEATURES = (("energy", "energy"), ("valence", "valence"))


def format_prediction(prediction: ClipPrediction, top: int = 3) -> str:
    """Human-readable summary: top genres, moods, tags and genre tags (``top`` of each), and every
    feature in natural units."""
    lines = [
        f"{prediction.path or 'audio'}  "
        f"({prediction.duration:.1f} s, {prediction.windows} window(s))"
    ]
    for key in ("genre", "mood", "tags"):
        ranked = getattr(prediction, key)[:top]
        if ranked:
            lines.append(f"  {key + ':':<9}" + ", ".join(f"{name} {p:.2f}" for name, p in ranked))
    if prediction.genre_tags:  # the multi-label genre-tag head, when the model has one
        lines.append(f"  genre tags: {top_genre_tags(prediction, top, ', ')}")
    for task in TASKS:  # heads added since: decoded values (the key) or ranked labels
        if task.decoder and set(DECODERS[task.decoder].fields) <= set(prediction.decoded):
            described = DECODERS[task.decoder].describe(prediction.decoded)
            basis = prediction.feature_basis.get(task.name, "")
            lines.append(f"  {task.text + ':':<9}{described:<24}  {basis}".rstrip())
        elif task.name in prediction.classes and prediction.classes[task.name]:
            ranked = prediction.classes[task.name][:top]
            text = task.text or task.name
            lines.append(f"  {text + ':':<9}" + ", ".join(f"{n} {p:.2f}" for n, p in ranked))
    if prediction.features:
        lines.append("  features:                 (trained on)")
        for name, value in prediction.features.items():
            unit = FEATURE_UNITS.get(name, "")
            text = f"{value:.1f} {unit}" if unit else f"{value:.3f}"
            basis = prediction.feature_basis.get(name, "")
            lines.append(f"    {name:<17}{text:<9}  {basis}".rstrip())
    return "\n".join(lines)


def model_notes(spec: TaggerSpec) -> list[str]:
    """One-line notes a user should read before trusting the answers (printed once per run)."""
    notes = []
    if spec.synthetic_only:
        notes.append(
            "note: this model was trained only on the synthetic demo set; on real music its "
            "answers mean little. Train on real music with `make train-real`."
        )
    missing = [f for f in spec.feature_names if f not in spec.trained_features]
    if missing:
        notes.append(f"note: not trained on {', '.join(missing)}: not shown")
    if not spec.provenance_known and spec.feature_names:
        notes.append(
            "note: this checkpoint predates provenance records; its features may include ones "
            "it never learned from real audio"
        )
    return notes


def format_timeline(windows: Sequence[ClipPrediction]) -> str:
    """A table with one line per window: time span, top genre and mood, energy and valence."""
    header = f"{'start':>8} {'end':>8}  {'genre':<18} {'mood':<16}" + "".join(
        f" {title:>8}" for _, title in TIMELINE_FEATURES
    )
    lines = [header]
    for w in windows:
        genre = f"{w.genre[0][0]} {w.genre[0][1]:.2f}" if w.genre else "-"
        mood = f"{w.mood[0][0]} {w.mood[0][1]:.2f}" if w.mood else "-"
        values = "".join(
            f" {w.features[name]:>8.3f}" if name in w.features else f" {'-':>8}"
            for name, _ in TIMELINE_FEATURES
        )
        lines.append(
            f"{_clock(w.start):>8} {_clock(w.start + w.duration):>8}  {genre:<18} {mood:<16}"
            + values
        )
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"
