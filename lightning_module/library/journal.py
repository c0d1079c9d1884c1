"""The journal of :mod:`.write_tags`: append-only JSON lines, one per file written, each with
every field's exact old and new value, so :mod:`.undo` can put the old tags back."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

#: Journal format version (a line ``{"journal": 1}`` opens every journal).
JOURNAL_VERSION = 1


class Journal:
    """Append-only JSON lines, one per file written, fsync'd before that file is renamed.

    Each line: ``{"file", "format", "time", "changes": [{"field", "old", "new"}, ...]}`` with
    exact old values. Appending (not rewriting) is what makes it a journal: a kill can at most
    leave a torn last line, which :func:`read_journal` ignores.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def append(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if new:
                self._file.write(json.dumps({"journal": JOURNAL_VERSION}) + "\n")
            else:
                self._file.write("\n")  # a torn last line from a kill stays on its own line
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a journal, in order, and warnings (torn or foreign lines are skipped)."""
    records, warnings = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                warnings.append(f"{path}:{number}: unreadable line (torn by a kill?): ignored")
                continue
            if isinstance(record, dict) and "journal" in record and "file" not in record:
                if record["journal"] != JOURNAL_VERSION:
                    raise ValueError(f"{path}: journal version {record['journal']} not supported")
                continue
            if not (isinstance(record, dict) and "file" in record and "changes" in record):
                warnings.append(f"{path}:{number}: not a journal record: ignored")
                continue
            records.append(record)
    return records, warnings


def journal_files(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Journal records grouped by file (oldest first), files newest last record first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    last: dict[str, int] = {}
    for i, record in enumerate(records):
        grouped.setdefault(record["file"], []).append(dict(record))
        last[record["file"]] = i
    return {f: grouped[f] for f in sorted(grouped, key=lambda f: -last[f])}
