"""Results files: predictions written as CSV rows or JSON lines, and read back.

* :class:`RowFormat` turns a prediction into the text of one row (and gives the CSV header):
  :mod:`.csv_rows` or :mod:`.json_lines`, plus any extra columns the caller keeps beside the
  prediction (a library table's ``file_bytes`` and ``file_mtime_ns``).
* :class:`PredictionWriter` is the writer: it streams rows to a file-like object, one ``write``
  of each whole row, flushed, so a long run can be watched and a killed one keeps what it wrote
  (``predict_clip FOLDER``, and the resumable table of ``inference.folder_table``, go through it).
* :func:`read_predictions` is the reader: a results file (``.csv``, else JSON lines) back into
  :class:`ClipPrediction` objects, equal to what was written to the writer's rounding; the torn
  last row of a killed run is left out.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from lightning_module.inference.formats.csv_rows import prediction_columns, prediction_from_row
from lightning_module.inference.formats.csv_rows import prediction_record as _record
from lightning_module.inference.formats.json_lines import prediction_from_dict, prediction_line
from lightning_module.inference.tagger import ClipPrediction
from lightning_module.model.spec import TaggerSpec

#: The formats a results file can have.
FORMATS = ("csv", "jsonl")


def format_of(path: str | os.PathLike) -> str:
    """``csv`` for a ``.csv`` file, else ``jsonl``."""
    return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"


class RowFormat:
    """The text of a results file in ``fmt`` for a model with ``spec``: :meth:`header` (CSV:
    the column line, ``\\r\\n`` as the csv module writes; JSON lines: "") and :meth:`row`.

    Args:
        top: JSON lines: how many genres / moods / tags per row (``None``: all; CSV has all).
        extra_columns: written after the prediction's columns (CSV) or keys (JSON lines).
    """

    def __init__(
        self,
        fmt: str,
        spec: TaggerSpec | Mapping[str, Any],
        top: int | None = None,
        extra_columns: Sequence[str] = (),
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
        self.fmt, self.top = fmt, top
        self.extra_columns = tuple(extra_columns)
        self.columns = [*prediction_columns(spec), *self.extra_columns]

    def header(self) -> str:
        if self.fmt == "jsonl":
            return ""
        text = io.StringIO()
        csv.writer(text).writerow(self.columns)
        return text.getvalue()

    def row(self, prediction: ClipPrediction, extra: Mapping[str, Any] | None = None) -> str:
        """One whole row, newline included; ``extra`` holds values of the extra columns."""
        if self.fmt == "jsonl":
            return prediction_line(prediction, self.top, extra)
        text = io.StringIO()
        writer = csv.DictWriter(text, self.columns, extrasaction="ignore")
        writer.writerow({**_record(prediction), **(extra or {})})
        return text.getvalue()


class PredictionWriter:
    """Streams predictions to ``stream`` as CSV (``fmt="csv"``, header first unless ``header``
    is false: appending to a table that has one) or JSON lines (``fmt="jsonl"``), each row one
    ``write``, flushed. See :class:`RowFormat` for ``top`` and ``extra_columns``."""

    def __init__(
        self,
        stream: IO[str] | Any,
        fmt: str,
        spec: TaggerSpec | Mapping[str, Any],
        top: int | None = None,
        *,
        extra_columns: Sequence[str] = (),
        header: bool = True,
    ) -> None:
        self.stream = stream
        self.rows = RowFormat(fmt, spec, top, extra_columns)
        if header and self.rows.header():
            self._put(self.rows.header())

    def write(self, prediction: ClipPrediction, extra: Mapping[str, Any] | None = None) -> None:
        self._put(self.rows.row(prediction, extra))

    def _put(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def read_predictions(path: str | os.PathLike, fmt: str | None = None) -> Iterator[ClipPrediction]:
    """The predictions of a results file (``fmt``: from its name, :func:`format_of`), in order.
    Every row must name its audio file (``path``). A last row without its newline that does not
    parse (JSON lines) or lacks cells (CSV) is the torn row of a killed run: left out.

    Raises:
        OSError: the file cannot be read.
        ValueError: a malformed line or row (one line naming the file, line and field).
    """
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt not in FORMATS:
        raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    torn_tail = not text.endswith("\n")
    if fmt == "csv":
        yield from _read_csv(path, text, torn_tail)
        return
    numbered = enumerate(io.StringIO(text, newline=""), 1)
    lines = [(n, line) for n, line in numbered if line.strip()]
    for number, line in lines:
        try:
            record = json.loads(line)
        except ValueError as err:
            if number == lines[-1][0] and not line.endswith("\n"):
                continue  # the torn last line of a killed run: not a result
            raise ValueError(f"{path}:{number}: not JSON ({err.args[0]})") from err
        if not isinstance(record, dict) or not record.get("path"):
            raise ValueError(f"{path}:{number}: no 'path' (not a predict_clip results line)")
        try:
            yield prediction_from_dict(record)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: malformed line ({err})") from err


def _read_csv(path: Path, text: str, torn_tail: bool) -> Iterator[ClipPrediction]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise ValueError(f"{path}: no 'path' column (not a predict_clip results file)")
    rows = list(enumerate(reader, 2))
    for number, row in rows:
        if torn_tail and number == rows[-1][0] and None in row.values():
            continue  # the torn last row of a killed run (fewer cells than columns)
        try:
            prediction = prediction_from_row(row)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}:{number}: malformed row ({err})") from err
        if not prediction.path:
            raise ValueError(f"{path}:{number}: empty 'path'")
        yield prediction
