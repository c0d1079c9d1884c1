"""What a catalogue run tags: a folder, a text file of paths, or a Parquet/CSV table.

Every input becomes a :class:`~lightning_module.inference.listing.Listing` (audio files,
files of unknown format, unreadable folders, counts of what is not audio), so a catalogue run
accounts for every file as the folder run does. A folder is listed by
:func:`~lightning_module.inference.listing.list_library` itself; a list or table names its files,
each classified by its name (:func:`datamodules.audio.classify_path`) and never opened here.
Relative paths in a list or table are relative to the current directory, as on a command line;
a path listed twice is tagged once (counted as ``listed twice``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from datamodules.audio import classify_path
from lightning_module.inference.listing import Listing, list_library

#: Suffixes read as a table (the rest of a file that is not a folder: a list, one path a line).
TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
DEFAULT_PATH_COLUMN = "path"


class CatalogueError(ValueError):
    """An input or output that cannot be used as asked; ``str(err)`` is one line naming the
    file (and the column or field)."""


def read_input(
    source: str | os.PathLike,
    path_column: str = DEFAULT_PATH_COLUMN,
    exclude: list[str | os.PathLike] | None = None,
) -> Listing:
    """The files ``source`` names, sorted into a :class:`Listing`.

    Args:
        source: a folder (searched recursively, as ``audiotagger tag FOLDER``), a ``.parquet``
            or ``.csv`` table with a ``path_column``, or a text file of paths (one a line;
            blank lines and lines starting with ``#`` are ignored).
        path_column: the table column that holds the paths.
        exclude: files that are never candidates (the output, when it lies in the folder).

    Raises:
        CatalogueError: ``source`` is missing or unreadable, or the table has no such column.
    """
    path = Path(source)
    if path.is_dir():
        return list_library(path, exclude=exclude or [])
    if not path.is_file():
        raise CatalogueError(f"{path}: no such folder, list or table")
    if path.suffix.lower() in TABLE_SUFFIXES:
        names = _table_paths(path, path_column)
    else:
        names = _list_paths(path)
    return _listing(names)


def _listing(names: list[str]) -> Listing:
    listing = Listing()
    seen: set[str] = set()
    for name in names:
        if name in seen:
            listing.not_audio["listed twice"] += 1
            continue
        seen.add(name)
        kind = classify_path(name)
        if kind == "audio":
            listing.audio.append(Path(name))
        elif kind == "unknown":
            listing.unknown.append(Path(name))
        else:
            listing.not_audio[kind] += 1
    listing.audio.sort()
    listing.unknown.sort()
    return listing


def _list_paths(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read ({err.strerror})") from err
    if "\0" in text[:4096]:
        raise CatalogueError(
            f"{path}: not a text file of paths (binary); tables must end in "
            + ", ".join(TABLE_SUFFIXES)
        )
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _table_paths(path: Path, column: str) -> list[str]:
    """The non-empty cells of ``column`` (Parquet through pyarrow, CSV through the csv module)."""
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                columns = list(reader.fieldnames or [])
                if column not in columns:
                    raise CatalogueError(_no_column(path, column, columns))
                return [row[column] for row in reader if row.get(column)]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise CatalogueError(f"{path}: not a readable CSV table ({_reason(err)})") from err
    import pyarrow.parquet as pq  # comes with ray[data]: the `catalogue` extra

    try:
        schema = pq.read_schema(path)
        if column not in schema.names:
            raise CatalogueError(_no_column(path, column, schema.names))
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    except CatalogueError:
        raise
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for damaged files
        raise CatalogueError(f"{path}: not a readable Parquet table ({_reason(err)})") from err
    if values and not all(v is None or isinstance(v, str) for v in values):
        raise CatalogueError(f"{path}: column {column!r} does not hold paths (text)")
    return [v for v in values if v]


def _no_column(path: Path, column: str, columns: list[str]) -> str:
    shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
    return f"{path}: no column {column!r} (columns: {shown or 'none'}); name it with --path-column"


def _reason(err: Exception) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err).split())[:200]
