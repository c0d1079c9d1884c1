"""Reading a source's tables (CSV/TSV/Parquet) into manifest rows: the table, config-time checks of
the column mapping, and one record to one row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from datamodules.builds import SourceError
from datamodules.manifest import FEATURES, SPLITS
from datamodules.sources.cleaning import to_float


def read_table(path: str | os.PathLike, **kwargs: object) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet table with every cell as text; one-line SourceError on failure."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"{path}: table not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path).astype("string")
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        options = {"sep": sep, "dtype": str, "keep_default_na": False, **kwargs}
        return pd.read_csv(path, **options)
    except Exception as err:  # pandas raises many types for malformed files
        detail = " ".join(str(err).split())
        raise SourceError(f"{path}: cannot parse table ({type(err).__name__}: {detail})") from err


def feature_value(raw: object, spec: object) -> float | None:
    """Apply a feature mapping ``spec`` ({column, scale, offset} or a column name) to ``raw``."""
    value = to_float(raw)
    if value is None or not isinstance(spec, Mapping):
        return value
    return value * float(spec.get("scale", 1.0)) + float(spec.get("offset", 0.0))


def feature_column(spec: object) -> str:
    """Table column a feature mapping ``spec`` ({column, scale, offset} or a column name) reads."""
    return str(spec["column"]) if isinstance(spec, dict) else str(spec)


def check_mapping_names(
    columns: Iterable[str], mappable: Iterable[str], features: Iterable[str]
) -> None:
    """Raise a one-line SourceError for a ``columns`` key not in ``mappable`` or a ``features``
    key that is not one of the nine features (config-time checks, before any table is read)."""
    mappable = list(mappable)
    unknown = sorted(set(columns) - set(mappable))
    if unknown:
        raise SourceError(
            f"columns: cannot map {', '.join(unknown)} (mappable: {', '.join(mappable)})"
        )
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise SourceError(f"features: unknown feature(s) {', '.join(unknown)}")


def check_columns(
    path: Path,
    available: Iterable[str],
    columns: Mapping[str, str],
    features: Mapping[str, object],
    extra_columns: Mapping[str, str],
) -> None:
    """Raise a one-line SourceError naming the first mapped column the table at ``path`` lacks.

    ``columns`` maps manifest columns, ``features`` feature names (see :func:`feature_column`) and
    ``extra_columns`` verbatim copies to table columns; ``available`` are the table's columns.
    """
    available = list(available)
    wanted = {
        **{f"columns.{k}": v for k, v in columns.items()},
        **{f"features.{k}": feature_column(v) for k, v in features.items()},
        **{f"extra_columns.{k}": v for k, v in extra_columns.items()},
    }
    for key, column in wanted.items():
        if column not in available:
            raise SourceError(
                f"{path}: no column {column!r} (mapped by {key}); "
                f"columns are {', '.join(available)}"
            )


def record_row(
    record: Mapping[str, object],
    columns: Mapping[str, str],
    features: Mapping[str, object],
    extra_columns: Mapping[str, str],
    split_map: Mapping[str, str],
    constants: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The manifest row (labels, split, features, extras) of one table ``record``.

    In this order, later keys overriding earlier ones: ``artist``/``genre``/``mood`` (those in
    ``columns``) as stripped text, empty -> None; ``split`` through ``split_map``, an unmapped
    value kept only when it already is train/val/test; ``constants`` (values a whole table
    carries); each feature through :func:`feature_value`; ``extra_columns`` copied verbatim.
    """
    row: dict[str, object] = {
        c: (str(record[columns[c]]).strip() or None)
        for c in ("artist", "genre", "mood")
        if c in columns
    }
    if "split" in columns:
        value = str(record[columns["split"]]).strip()
        row["split"] = split_map.get(value, value if value in SPLITS else None)
    row.update(constants or {})
    for name, spec in features.items():
        row[name] = feature_value(record[feature_column(spec)], spec)
    for name, column in extra_columns.items():
        row[name] = record[column]
    return row
