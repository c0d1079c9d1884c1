"""The output of a catalogue run: one folder, resumable after a kill, never holding a row twice.

::

    OUT/state.json            the model (path, size, sha256) and the settings that wrote the rows
    OUT/tags/part-*.parquet   the rows, one per file: the columns of ``audiotagger tag FOLDER
                              --out tags.csv`` (:class:`RowFormat`: the prediction, then
                              ``file_bytes`` and ``file_mtime_ns``), with their values
    OUT/skipped.parquet       path, reason, kind (the summary's name for it) of every file the
                              last run did not tag
    OUT/tags.csv, OUT/skipped.csv   with ``--csv``: the same tables as CSV, written at the end

Why parts written by the driver, not ``Dataset.write_parquet``: each part is written to a
temporary name, synced and renamed, so a kill leaves whole parts or none (a stray ``.tmp`` is
removed by the next run), and one writer means a file's row can be in one part only; the output
also need not be on storage every node shares. A resumed run keeps the rows of files whose path,
size and mtime are unchanged, rewrites the parts that hold rows of changed files without them,
and tags the rest; rows of files that are not in this run's input stay (a catalogue can be
tagged in shards into one folder). Another model or other settings are refused (one line)
unless ``force``, which starts the folder over. Skipped files are tried again on a rerun, as
in the folder run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from datamodules.io import write_json_atomic
from lightning_module.catalogue.inputs import CatalogueError
from lightning_module.inference.decoders import DECODERS
from lightning_module.inference.folder_table import (
    IDENTITY_COLUMNS,
    skip_reason,
    state_difference,
)
from lightning_module.inference.formats.csv_rows import top_columns
from lightning_module.inference.formats.results import RowFormat
from lightning_module.model.spec import TaggerSpec

STATE_NAME = "state.json"
TAGS_DIR = "tags"
SKIPPED_NAME = "skipped"
STATE_KIND = "audiotagger catalogue"
STATE_VERSION = 1
#: Columns of a row that are text or whole numbers; every other column is a float. Text: the
#: path, each task's top label (``model.tasks``), the genre tags, and decoders' text fields (the
#: key's ``key``, ``mode``, ``camelot``).
TEXT_COLUMNS = (
    "path",
    *top_columns(),
    "genre_tags",
    *(name for d in DECODERS.values() for name, kind in d.fields.items() if kind is str),
)
INT_COLUMNS = ("windows", *IDENTITY_COLUMNS)
SKIPPED_COLUMNS = ("path", "reason", "kind")


def row_columns(spec: TaggerSpec | Mapping[str, Any]) -> list[str]:
    """The columns of a row: exactly those of the folder run's CSV table."""
    return RowFormat("csv", spec, None, IDENTITY_COLUMNS).columns


def row_schema(spec: TaggerSpec | Mapping[str, Any]) -> Any:
    """The Parquet schema of a row (a ``pyarrow.Schema``): text, int64 or float64 columns."""
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column in TEXT_COLUMNS:
            return pa.string()
        return pa.int64() if column in INT_COLUMNS else pa.float64()

    return pa.schema([(c, kind(c)) for c in row_columns(spec)])


def expected_state(model: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``state.json`` of a run with this model identity (``folder_table.model_file_record``) and the
    settings that change the rows."""
    return {"kind": STATE_KIND, "version": STATE_VERSION, "model": model, "settings": settings}


class Output:
    """The output folder of one run (see the module docstring).

    Args:
        folder: the output folder (created).
        spec: the model's spec (the columns).
        state: :func:`expected_state` of this run.
        force: start over whatever the folder holds.
        part_rows: rows per Parquet part (more rows: fewer files; fewer: less lost to a kill).
        part_seconds: also write a part when the oldest row waiting is this old.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        spec: TaggerSpec | Mapping[str, Any],
        state: dict[str, Any],
        force: bool = False,
        part_rows: int = 1000,
        part_seconds: float = 60.0,
    ) -> None:
        self.folder = Path(folder)
        self.tags = self.folder / TAGS_DIR
        self.schema = row_schema(spec)
        self.columns = row_columns(spec)
        self.state = state
        self.force = force
        self.part_rows, self.part_seconds = part_rows, part_seconds
        self._waiting: list[Any] = []  # pyarrow tables not yet in a part
        self._waiting_rows = 0
        self._since = 0.0
        self._run = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self._seq = 0

    # -- resume -----------------------------------------------------------------------------------
    def open(self, identities: Mapping[str, tuple[int, int]]) -> tuple[set[str], int]:
        """Make the folder ready; returns (paths whose rows are kept, rows dropped).

        A row is kept when its file is in ``identities`` (path → (bytes, mtime ns) of this run's
        input) with the same identity, or not in this run's input at all; it is dropped when its
        file changed, or when an earlier part already holds its path.

        Raises:
            CatalogueError: the folder was written by another model, settings or program
                (without ``force``), or is not a folder.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise CatalogueError(f"{self.folder}: not a folder (the output is a folder)")
        state = self.folder / STATE_NAME
        if self.force and self.folder.exists():
            for name in (STATE_NAME, f"{SKIPPED_NAME}.parquet", f"{SKIPPED_NAME}.csv", "tags.csv"):
                (self.folder / name).unlink(missing_ok=True)
            shutil.rmtree(self.tags, ignore_errors=True)
        if state.is_file():
            self._check_state(state)
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise CatalogueError(
                f"{self.folder}: not empty, and no {STATE_NAME} says a catalogue run wrote it; "
                "pass --force to start it over, or choose another --out"
            )
        self.tags.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state, self.state)
        return self._resume(identities)

    def _check_state(self, path: Path) -> None:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CatalogueError(f"{path}: unreadable ({err}); pass --force to start over") from err
        why = state_difference(old if isinstance(old, dict) else {}, self.state)
        if why:
            raise CatalogueError(
                f"{self.folder}: written {why}; pass --force to re-tag everything into it, "
                "or choose another --out"
            )

    def _resume(self, identities: Mapping[str, tuple[int, int]]) -> tuple[set[str], int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for tmp in self.tags.glob("*.tmp"):  # a part a kill caught mid-write: never renamed
            tmp.unlink()
        kept: set[str] = set()
        dropped = 0
        for part in self.parts():
            try:
                ids = pq.read_table(part, columns=["path", *IDENTITY_COLUMNS]).to_pylist()
            except Exception as err:  # only a hand-damaged part: parts are renamed when whole
                raise CatalogueError(
                    f"{part}: unreadable part ({' '.join(str(err).split())[:120]}); "
                    "delete it (its files are tagged again) or pass --force"
                ) from err
            keep = []
            for row in ids:
                path = row["path"]
                known = identities.get(path)
                same = known is None or known == tuple(row[c] for c in IDENTITY_COLUMNS)
                keep.append(same and path not in kept)
                if keep[-1]:
                    kept.add(path)
            if all(keep):
                continue
            dropped += keep.count(False)
            if any(keep):
                self._write_part(pq.read_table(part).filter(pa.array(keep)), part)
            else:
                part.unlink()
        return {p for p in kept if p in identities}, dropped

    def parts(self) -> list[Path]:
        """The Parquet parts of the table, in the order they were written."""
        return sorted(self.tags.glob("part-*.parquet"))

    # -- writing ----------------------------------------------------------------------------------
    def add(self, rows: Any) -> None:
        """Queue rows (a ``pyarrow.Table`` of :func:`row_schema`); a part is written when
        ``part_rows`` are waiting or the oldest has waited ``part_seconds``."""
        if not rows.num_rows:
            return
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting.append(rows)
        self._waiting_rows += rows.num_rows
        if (
            self._waiting_rows >= self.part_rows
            or time.monotonic() - self._since >= self.part_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Write the rows waiting as one part."""
        import pyarrow as pa

        if not self._waiting:
            return
        table = pa.concat_tables(self._waiting).cast(self.schema)
        self._write_part(table, self.tags / f"part-{self._run}-{self._seq:06d}.parquet")
        self._seq += 1
        self._waiting, self._waiting_rows = [], 0

    def _write_part(self, table: Any, path: Path) -> None:
        """``table`` to ``path``, whole or not at all: written beside it, synced, renamed."""
        import pyarrow.parquet as pq

        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def write_skipped(self, skipped: Iterable[tuple[str, str]], csv_too: bool = False) -> Path:
        """The skipped table (path, reason, kind) of this run, replacing the last run's."""
        import pyarrow as pa

        rows = [{"path": p, "reason": r, "kind": skip_reason(r)} for p, r in sorted(set(skipped))]
        schema = pa.schema([(c, pa.string()) for c in SKIPPED_COLUMNS])
        path = self.folder / f"{SKIPPED_NAME}.parquet"
        self._write_part(pa.Table.from_pylist(rows, schema=schema), path)
        if csv_too:
            _write_csv(self.folder / f"{SKIPPED_NAME}.csv", list(SKIPPED_COLUMNS), [rows])
        return path

    def write_csv(self) -> Path:
        """``tags.csv``: every row of the table, sorted by path, written exactly as the folder
        run writes its CSV (same header, same cells)."""
        import pyarrow.parquet as pq

        tables = [pq.read_table(p, schema=self.schema) for p in self.parts()]
        rows = sorted((r for t in tables for r in t.to_pylist()), key=lambda r: r["path"])
        path = self.folder / "tags.csv"
        _write_csv(path, self.columns, [rows])
        return path

    def read(self) -> Any:
        """The whole table as one ``pyarrow.Table`` (tests, small catalogues)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(p, schema=self.schema) for p in self.parts()]
        return pa.concat_tables(tables) if tables else self.schema.empty_table()


def _write_csv(path: Path, columns: list[str], chunks: Iterable[list[dict[str, Any]]]) -> None:
    """A CSV as ``csv.DictWriter`` writes it (None → empty cell), replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="", errors="surrogateescape") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        for rows in chunks:
            writer.writerows(rows)
    os.replace(tmp, path)
