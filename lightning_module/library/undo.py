"""Undo what a journal recorded: every file's fields back to what they were before the runs.

The undo of each file goes through the same safe path as writing (:func:`.safe_write.apply_plan`):
a verified copy renamed over the original, so a kill leaves the file either as it was or fully
restored.
"""

from __future__ import annotations

import os
from typing import IO, Any

from lightning_module.library.journal import journal_files, read_journal
from lightning_module.library.safe_write import (
    FieldChange,
    FilePlan,
    Summary,
    norm_key,
    open_for_plan,
    run_one,
)
from lightning_module.library.tag_fields import TagError, TagFile, open_tags, value_texts


# -- undo ------------------------------------------------------------------------------------
def _same_value(tags: TagFile, a: Any, b: Any) -> bool:
    """Two exact values hold the same field: same texts and, outside Vorbis comments (whose
    position in the comment is not part of the value), the same frame or item."""
    return value_texts(a) == value_texts(b) and (tags.family == "vorbis" or a == b)


def plan_undo(path: str, records: list[dict[str, Any]]) -> FilePlan:
    """The plan that puts back what ``records`` (this file's journal lines, oldest first, one
    per run that wrote it) replaced: every field as it was before the first run.

    The runs are undone in memory, newest change first, so each step sees the state it has to
    invert (Vorbis comments go back to their positions). Per field, a change is undone when the
    field holds what it wrote; it is passed over when the field already holds a value from
    before it (the run never reached the file: a kill before its rename; or an earlier undo
    already put it back); anything else was changed since, by someone else: kept, reported once.
    ``plan.changes`` has one composed change per field (now → before the first run), which is
    what is shown and verified; ``plan.steps`` are the writes; the whole resulting tag must read
    back as simulated.
    """
    plan = open_for_plan(path)
    if plan.skipped or plan.tags is None:
        return plan
    tags = plan.tags
    plan.kept_note = "changed since it was written, so not undone; it was {ours}"
    before = tags.snapshot()
    steps: list[FieldChange] = []
    start: dict[str, Any] = {}  # field -> its value now, for the composed change
    kept: set[str] = set()
    try:
        # every field's values before each change, oldest first: the states it may be back at
        earlier: dict[str, list[Any]] = {}
        for record in records:
            for change in record["changes"]:
                earlier.setdefault(norm_key(tags, change["field"]), []).append(change["old"])
        for record in reversed(records):
            for change in reversed(record["changes"]):
                key, old, new = change["field"], change["old"], change["new"]
                norm = norm_key(tags, key)
                states = earlier[norm]
                states.pop()  # from here on: the values from before the earlier changes
                if norm in kept:
                    continue
                current = tags.read(key)
                if value_texts(current) == value_texts(new):
                    start.setdefault(norm, (key, current))
                    steps.append(FieldChange(key, current, old, exact=True))
                    tags.write(key, old)
                elif any(_same_value(tags, current, s) for s in (*states, old)):
                    continue  # never written, or already back
                else:
                    kept.add(norm)
                    first = states[0] if states else old
                    plan.kept.append((key, value_texts(current), value_texts(first)))
    except (TagError, KeyError, TypeError, ValueError, IndexError) as err:
        plan.skipped = f"cannot undo ({err})"
        return plan
    expected = tags.snapshot()
    if expected == before:  # nothing to do, or edits that cancel out
        return plan
    plan.changes = [
        FieldChange(key, now, tags.read(key), exact=True)
        for key, now in start.values()
        if not _same_value(tags, now, tags.read(key))
    ]
    plan.steps, plan.expected = steps, expected
    original = records[0].get("before") if records else None
    if not plan.kept and isinstance(original, dict):  # every field is back as it was
        if original.get("tags") is False and not expected and tags.family == "id3":
            plan.drop_container = True  # we added the ID3 tag / chunk: take it away again
        elif isinstance(original.get("size"), int):
            plan.target_size = original["size"]
    # The plan is applied to a fresh load, so the in-memory edits above are only a simulation.
    fresh = open_tags(plan.path)
    plan.tags, plan.label = fresh, fresh.label
    return plan


def run_undo(
    journal_path: str | os.PathLike,
    apply: bool,
    out: IO[str],
    progress: bool = True,
    verify: str = "decode",
) -> Summary:
    """Undo (with ``apply``; else show) every change a journal records, newest first."""
    from tqdm.auto import tqdm

    records, warnings = read_journal(journal_path)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    summary = Summary()
    files = journal_files(records)
    bar = tqdm(files.items(), total=len(files), unit="file", disable=not progress, leave=False)
    for path, file_records in bar:
        plan = plan_undo(path, file_records)
        run_one(plan, apply, None, False, verify, summary, bar, out)
    return summary


def undo_command(
    journal_path: str,
    apply: bool,
    progress: bool = True,
    verify: str = "decode",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``scripts/write_tags.py --undo`` without the argument parsing."""
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    summary = run_undo(journal_path, apply, out, progress, verify)
    verb = "restored" if apply else "would restore"
    print(
        f"{verb} {summary.changed} file(s) ({summary.fields} field(s)), already as before "
        f"{summary.unchanged}, skipped {len(summary.skipped)}"
        + (f", kept {summary.kept} field(s) changed since" if summary.kept else "")
        + (f", failed {len(summary.failed)}" if summary.failed else ""),
        file=err,
    )
    return 1 if summary.failed else 0
