"""Planning one standard (player-visible) field: the user's values kept, replaced, or kept with
ours appended after them (``--genre-mode``), and our own earlier values updated or withdrawn.

A field holds ours when the marker (``AUDIOTAGGER_WRITTEN``) records exactly what it holds
(``keep``/``replace``), or, in ``append`` mode, the values we added after the user's.
"""

from __future__ import annotations

from typing import Any

from lightning_module.library.safe_write import FieldChange, FilePlan
from lightning_module.library.tag_fields import V23_JOIN, TagFile, value_texts
from lightning_module.library.tag_values import WriteOptions


def _split_v23(tags: TagFile, texts: list[str]) -> list[str]:
    """The separate values of an ID3v2.3 field, whose values are joined in one text."""
    if tags.family != "id3" or tags.id3_version != 3:
        return texts
    return [v.strip() for t in texts for v in t.split(V23_JOIN.strip()) if v.strip()]


def _without(values: list[str], ours: list[str]) -> list[str]:
    """``values`` less one occurrence of each of ``ours``: the user's values in a field."""
    rest = list(values)
    for text in ours:
        if text in rest:
            rest.remove(text)
    return rest


def plan_standard(
    plan: FilePlan,
    logical: str,
    want: list[str] | None,
    options: WriteOptions,
    ours_before: dict[str, Any],
    ours_after: dict[str, list[str]],
) -> None:
    """Plan one standard field (see the module docstring); records our texts in ``ours_after``."""
    tags = plan.tags
    assert tags is not None
    key = tags.key(logical)
    current_value = tags.read(key)
    current = value_texts(current_value)
    mode = options.mode_of(logical)
    before = ours_before.get(logical)
    if mode == "append":
        # The user's values stay, each its own value; ours follow, less any the user has.
        values = _split_v23(tags, current)
        ours_then = _split_v23(tags, before) if isinstance(before, list) else []
        if ours_then and all(t in values for t in ours_then):
            values = _without(values, ours_then)
        users = {v.casefold() for v in values}
        ours = [t for t in want or [] if t.casefold() not in users]
        new = values + ours
        stored = value_texts(tags.make(key, new)) if new else []
        if stored != current:
            plan.changes.append(
                FieldChange(key, current_value, tags.make(key, new) if new else None)
            )
        if ours:
            ours_after[logical] = ours
        return
    ours_now = bool(current) and before == current
    if want is None:
        if ours_now:  # our earlier value, no longer predicted: take it back
            plan.changes.append(FieldChange(key, current_value, None))
        return
    stored = value_texts(tags.make(key, want))
    if current == stored:
        if ours_now:
            ours_after[logical] = stored
        return
    if not current or ours_now or mode == "replace":
        plan.changes.append(FieldChange(key, current_value, tags.make(key, want)))
        ours_after[logical] = stored
    else:
        plan.kept.append((key, current, want))
