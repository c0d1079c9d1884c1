"""``ClipPrediction``: what the model says about one clip (or one window of it), as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Tasks with a field of their own in :class:`ClipPrediction` (tempo is a feature); every other
#: task of ``TASKS`` lands in its ``classes`` or, with a decoder, its ``decoded`` values.
DEDICATED: tuple[str, ...] = ("genre", "mood", "features", "tags", "genre_tags", "tempo")


@dataclass
class ClipPrediction:
    """What the model says about one clip (or one window of it).

    ``genre``/``mood``/``tags`` are (name, probability) pairs, most probable first; ``features``
    maps each audio feature the model was trained on to its value in natural units (tempo in BPM,
    loudness in dB, rest 0-1); ``feature_basis`` says, per feature, what that training was
    (``teacher:vibenet 540, human 90 (630 real clips)``; see ``TaggerSpec.feature_basis``).
    ``genre_tags`` maps each multi-label AllMusic genre tag of the genre-tag head to its
    probability (sigmoid per window, windows averaged, like ``tags``), most probable first; empty
    for a model without that head. Heads added to ``model.tasks.TASKS`` since: ``decoded`` holds
    the flat values of a task with a decoder (the key head: ``key``, ``mode``,
    ``key_confidence``, ``camelot``; see ``inference.decoders``), ``classes`` the ranked labels
    of any other classification task, by task name.
    """

    path: str | None
    duration: float  # seconds of audio tagged
    windows: int
    genre: list[tuple[str, float]] = field(default_factory=list)
    mood: list[tuple[str, float]] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    tags: list[tuple[str, float]] = field(default_factory=list)
    start: float = 0.0  # offset of the tagged audio in the file, seconds
    feature_basis: dict[str, str] = field(default_factory=dict)
    genre_tags: dict[str, float] = field(default_factory=dict)
    classes: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    decoded: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        data = asdict(self)
        for key in ("genre", "mood", "tags"):
            data[key] = [
                {"label": n, "probability": round(p, 4)} for n, p in getattr(self, key)[:top]
            ]
        data["features"] = {k: round(v, 4) for k, v in self.features.items()}
        # Every genre tag (not only ``top``); no key at all for a model without that head.
        data.pop("genre_tags")
        if self.genre_tags:
            data["genre_tags"] = {k: round(v, 4) for k, v in self.genre_tags.items()}
        # Further tasks: ranked labels under the task's name, decoded values as flat keys.
        data.pop("classes")
        data.pop("decoded")
        for task, ranked in self.classes.items():
            data[task] = [{"label": n, "probability": round(p, 4)} for n, p in ranked[:top]]
        data.update(self.decoded)
        return data
