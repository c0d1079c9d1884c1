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
    open_for_plan,
    run_one,
)
from lightning_module.library.tag_fields import TagError, open_tags, value_texts


# -- undo ------------------------------------------------------------------------------------
def plan_undo(path: str, records: list[dict[str, Any]]) -> FilePlan:
    """The changes that put back, field by field, what ``records`` (this file's journal lines,
    oldest first) replaced. A field changed since (neither what we wrote nor the original) is
    kept and reported; one already back is skipped."""
    plan = open_for_plan(path)
    if plan.skipped or plan.tags is None:
        return plan
    tags = plan.tags
    plan.kept_note = "changed since it was written, so not undone; it was {ours}"
    # Undo in memory, newest change first, so each step sees the state it has to invert.
    before = tags.snapshot()
    sequence: list[FieldChange] = []
    try:
        for record in reversed(records):
            for change in reversed(record["changes"]):
                key, old, new = change["field"], change["old"], change["new"]
                current = tags.read(key)
                if value_texts(current) == value_texts(old) and (
                    tags.family == "vorbis" or current == old
                ):
                    continue  # never written (a kill before the rename) or already undone
                if value_texts(current) != value_texts(new):
                    plan.kept.append((key, value_texts(current), value_texts(old)))
                    continue
                sequence.append(FieldChange(key, current, old, exact=True))
                tags.write(key, old)
    except (TagError, KeyError, TypeError, ValueError) as err:
        plan.skipped = f"cannot undo ({err})"
        return plan
    # The plan is applied to a fresh load, so the in-memory edits above are only a simulation.
    fresh = open_tags(plan.path)
    plan.tags, plan.changes = fresh, sequence
    plan.label = fresh.label
    if sequence and tags.snapshot() == before:  # the edits cancel out
        plan.changes = []
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
