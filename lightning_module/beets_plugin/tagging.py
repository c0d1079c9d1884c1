"""Tag beets items: one model, the items' files predicted in shared batches, fields set, stored.

For each item (:func:`tag_items`): items this model already tagged are left alone (no decode,
no model load; ``force`` re-tags them); the rest are predicted with
:meth:`~lightning_module.inference.tagger.Tagger.predict_files` (windows of consecutive files
share batches while the next files decode), their values planned by :mod:`.fields`, set on the
item, written to the file through beets' own write path when asked (``Item.try_write``, which
also carries our flexible attributes, see :mod:`.media`), and stored. A file that cannot be
decoded (vanished, corrupt) is reported in one line and the run goes on: nothing of another
item is lost, and the failed item keeps every value it had.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from datamodules.audio import AudioError
from lightning_module.beets_plugin.fields import (
    MODEL_FIELD,
    PREFIX,
    WRITTEN_FIELD,
    BeetsOptions,
    desired_values,
    plan_standard,
)
from lightning_module.beets_plugin.model import ModelRef

#: beets' field for each logical standard field (beets 2 keeps genres as a list).
BEETS_NAMES = {"genre": "genres", "mood": "mood", "bpm": "bpm", "initial_key": "initial_key"}


@dataclass
class TagReport:
    """What :func:`tag_items` did (counts of items)."""

    changed: int = 0
    unchanged: int = 0
    already: int = 0
    #: (file, reason) of each item whose file could not be tagged
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: field -> items where the user's value was kept (without ``force``)
    kept: Counter[str] = field(default_factory=Counter)
    #: the items whose values changed (stored)
    changed_items: list[Any] = field(default_factory=list)

    def line(self, model_id: str) -> str:
        parts = [f"tagged {self.changed} item(s)", f"unchanged {self.unchanged}"]
        if self.already:
            parts.append(f"already tagged by this model {self.already} (--force re-tags)")
        if self.kept:
            kept = ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items()))
            parts.append(f"kept the user's {kept} (--force replaces)")
        parts.append(f"skipped {len(self.skipped)}")
        return "audiotagger: " + ", ".join(parts) + f"; model {model_id}"


def beets_name(logical: str) -> str:
    """The field of the running beets for a logical standard field."""
    from beets.library import Item

    name = BEETS_NAMES[logical]
    return name if name in Item._fields or logical != "genre" else "genre"


def _normalised(item: Any, name: str, value: Any) -> Any:
    """``value`` as beets stores it in ``name`` (it spells keys its own way: ``Eb`` -> ``D#``)."""
    kind = item._type(name)
    return kind.normalize(value) if value is not None else None


def apply_prediction(
    item: Any,
    prediction: dict[str, Any],
    options: BeetsOptions,
    model_id: str,
    force: bool = False,
) -> tuple[bool, list[str]]:
    """Set the item's fields from one prediction (``ClipPrediction.to_dict()`` form); nothing is
    stored or written. Returns (whether any value changed, beets fields whose user value was
    kept)."""
    before = dict(item)
    wanted_logical, flex = desired_values(prediction, options, model_id)
    names = {logical: beets_name(logical) for logical in options.fields}
    wanted = {}
    for logical, value in wanted_logical.items():
        if names[logical] == "genre":  # a beets before 2.14: one genre string
            value = "; ".join(value)
        wanted[names[logical]] = _normalised(item, names[logical], value)
    current = {name: item.get(name) for name in names.values()}
    written = _written(item)
    changes, kept = plan_standard(current, wanted, written, tuple(names.values()), force)
    for name, value in changes.items():
        if value is None:
            item[name] = item._type(name).null
            written.pop(name, None)
        else:
            item[name] = value
            written[name] = item.get(name)  # as beets normalised it
    for name in kept:
        written.pop(name, None)
    # Our attributes: set what the model gives, drop what it no longer gives.
    for key in [k for k in item if k.startswith(PREFIX)]:
        if key not in flex and key != WRITTEN_FIELD:
            del item[key]
    for key, value in flex.items():
        item[key] = value
    if written:
        item[WRITTEN_FIELD] = json.dumps(written, sort_keys=True)
    elif WRITTEN_FIELD in item:
        del item[WRITTEN_FIELD]
    return dict(item) != before, kept


def _written(item: Any) -> dict[str, Any]:
    try:
        value = json.loads(item.get(WRITTEN_FIELD) or "{}")
    except ValueError:  # edited by hand: trust nothing as ours
        return {}
    return value if isinstance(value, dict) else {}


def tag_items(
    items: Iterable[Any],
    model: ModelRef,
    options: BeetsOptions,
    force: bool = False,
    write: bool = False,
    show: Callable[[Any], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TagReport:
    """Tag ``items`` with ``model`` (loaded only if some item needs it); see the module docstring.

    ``write``: also write each changed item's file (beets' ``Item.try_write``); ``show(item)`` is
    called for each changed item before it is stored (to print its changes); ``warn(line)``
    gets one line per skipped file and the model's notes.
    """
    report = TagReport()
    todo = []
    for item in items:
        if not force and model.made(item.get(MODEL_FIELD)):
            report.already += 1
        else:
            todo.append(item)
    if not todo:
        return report
    first_load = not model.loaded
    tagger, label = model.tagger, model.label
    if first_load and warn is not None:
        for note in model.notes():
            warn(note)
    paths = [os.fsdecode(item.path) for item in todo]
    results = tagger.predict_files(paths)
    for item, path, result in zip(todo, paths, results, strict=True):
        if isinstance(result, AudioError):
            reason = str(result).removeprefix(f"{path}: ")
            report.skipped.append((path, reason))
            if warn is not None:
                warn(f"skipped: {path}: {reason}")
            continue
        try:
            changed, kept = apply_prediction(item, result.to_dict(), options, label, force)
        except ValueError as err:  # a malformed key record: this item only, said in one line
            report.skipped.append((path, str(err)))
            if warn is not None:
                warn(f"skipped: {path}: {err}")
            continue
        report.kept.update(kept)
        if not changed:
            report.unchanged += 1
            continue
        report.changed += 1
        report.changed_items.append(item)
        if show is not None:
            show(item)
        if write:
            item.try_write()  # beets logs a failure itself; the values are still stored
        item.store()
    return report
