"""``labels``: a folder of audio plus a labels table, with a column mapping.

Generic: which CSV column holds the track id, the audio path, the artist, the genre, the mood, the
split, which hold features (with an optional affine ``scale``/``offset``, e.g. a ±1 arousal sign
to a weak 0/1 ``energy`` target) and which are copied verbatim (e.g. ``tag_<name>`` soft targets).
``genre_tags`` splits one column of several genre names per cell (4Q's ``allmusic_genres``:
``International; Jazz``) into multi-label ``genre_tag_<name>`` columns.
Label renaming is ``label_map`` (common to all sources). Without an audio path column, files under
``root`` are matched to the track id column by file stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from datamodules.audio import AUDIO_EXTENSIONS
from datamodules.manifest import FEATURES, GENRE_TAG_PREFIX, SPLITS
from datamodules.sources.base import (
    Item,
    Skip,
    SourceConfig,
    SourceError,
    SourceListing,
    check_columns,
    check_mapping_names,
    iter_audio_files,
    read_table,
    record_row,
    run_source,
)

#: Manifest columns the ``columns`` mapping may name.
MAPPABLE: tuple[str, ...] = ("track_id", "audio_path", "artist", "genre", "mood", "split")


@dataclass
class LabelsConfig(SourceConfig):
    """Options of the labels source (plus :class:`SourceConfig`'s).

    Attributes:
        root: folder the audio paths are relative to (and searched when there is no path column).
        labels: the table (CSV/TSV/Parquet); default ``<root>/labels.csv``.
        columns: manifest column -> table column, for ``track_id``, ``audio_path``, ``artist``,
            ``genre``, ``mood``, ``split``. Unnamed ones default to a same-named table column
            (except ``split``, which is only used when mapped).
        features: feature -> table column, or ``{column, scale, offset}`` (value*scale + offset).
            Default: same-named feature columns of the table.
        extra_columns: manifest column -> table column copied verbatim (e.g. ``tag_calmness``).
        split_map: table split value -> train/val/test (e.g. ``training: train``).
        id_prefix: prefix added to the track id (e.g. ``gtzan:``).
        extensions: audio extensions searched when matching files by track id.
        join: further tables (relative to ``root``) joined on the track id column, e.g. GTZAN's
            ``tempo.csv`` beside its ``labels.csv``; their columns can then be mapped.
        genre_tags: ``{column, separator}`` (separator default ``;``): a column holding several
            genre names per cell, written as one ``genre_tag_<name>`` column per name seen in the
            table (names stripped, kept verbatim): 1.0 / 0.0 on a row whose cell names at least
            one genre, empty (masked) on every one of them for an empty or unreadable cell. Rare
            names are kept; the data module decides which become head outputs.
        genre_from_tags: genre-tag name -> genre, for rows without a genre whose genre-tag cell
            names exactly one genre (4Q's ``Rap`` alone -> ``hiphop``): an unambiguous hard label
            from the same annotators; a row naming two genres keeps its genre empty.
    """

    root: str = ""
    labels: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    features: dict[str, object] = field(default_factory=dict)
    extra_columns: dict[str, str] = field(default_factory=dict)
    split_map: dict[str, str] = field(default_factory=dict)
    id_prefix: str = ""
    extensions: list[str] = field(default_factory=lambda: list(AUDIO_EXTENSIONS))
    join: list[str] = field(default_factory=list)
    genre_tags: dict[str, str] = field(default_factory=dict)
    genre_from_tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.root:
            raise SourceError("root is required (the folder the audio paths are relative to)")
        if self.genre_tags and not isinstance(self.genre_tags, dict):
            raise SourceError("genre_tags: expected {column, separator}")
        if self.genre_tags:
            unknown = sorted(set(self.genre_tags) - {"column", "separator"})
            if unknown or not str(self.genre_tags.get("column") or "").strip():
                raise SourceError(
                    "genre_tags: expected {column, separator}"
                    + (f", not {', '.join(unknown)}" if unknown else " (column is required)")
                )
            if not str(self.genre_tags.get("separator", ";")):
                raise SourceError("genre_tags: separator must not be empty")
        if self.genre_from_tags and not self.genre_tags:
            raise SourceError("genre_from_tags needs genre_tags (the column it reads)")
        if not isinstance(self.genre_from_tags, dict) or not all(
            str(v).strip() for v in self.genre_from_tags.values()
        ):
            raise SourceError("genre_from_tags: expected {tag name: genre}, no empty genre")
        check_mapping_names(self.columns, MAPPABLE, self.features)
        bad = sorted(v for v in self.split_map.values() if v not in SPLITS)
        if bad:
            raise SourceError(f"split_map: values must be {', '.join(SPLITS)}, got {bad}")


def list_items(config: LabelsConfig) -> SourceListing:
    """One item per table row."""
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise SourceError(f"{root}: folder not found")
    table_path = Path(config.labels).expanduser() if config.labels else root / "labels.csv"
    table = read_table(table_path)
    columns = {c: c for c in MAPPABLE if c != "split" and c in table.columns}
    columns.update(config.columns)
    for name in config.join:
        table = _join(table, root / name, columns.get("track_id", "track_id"))
    available = list(table.columns)
    features = config.features or {f: f for f in FEATURES if f in available}
    check_columns(table_path, available, columns, features, config.extra_columns)
    genre_tags = _genre_tag_rows(table, table_path, config.genre_tags)
    if "track_id" not in columns and "audio_path" not in columns:
        raise SourceError(f"{table_path}: map columns.track_id or columns.audio_path")
    by_stem: dict[str, Path] = {}
    if "audio_path" not in columns:
        for path in iter_audio_files(root, config.extensions):
            by_stem.setdefault(path.stem, path)

    listing = SourceListing()
    for line, record in enumerate(table.to_dict("records"), start=2):
        raw_id = str(record[columns["track_id"]]).strip() if "track_id" in columns else ""
        rel = str(record[columns["audio_path"]]).strip() if "audio_path" in columns else ""
        if not raw_id:
            raw_id = Path(rel).with_suffix("").as_posix() if rel else ""
        if not raw_id:
            listing.skips.append(Skip(f"{table_path.name}:{line}", "no track id", f"line {line}"))
            continue
        track_id = f"{config.id_prefix}{raw_id}"
        row = record_row(record, columns, features, config.extra_columns, config.split_map)
        if genre_tags:
            row.update(genre_tags[line - 2])
            if not row.get("genre"):
                row["genre"] = _genre_from_tags(genre_tags[line - 2], config.genre_from_tags)
        if rel:
            audio = Path(rel).expanduser()
            audio = audio if audio.is_absolute() else root / audio
        else:
            audio = by_stem.get(raw_id) or by_stem.get(raw_id.rsplit(":", 1)[-1])
        if audio is None or not audio.is_file():
            where = str(audio) if audio is not None else f"no file named {raw_id}.* under {root}"
            listing.skips.append(Skip(track_id, "audio file not found", where, rel or raw_id))
            continue
        name = audio.relative_to(root).as_posix() if audio.is_relative_to(root) else audio.name
        listing.items.append(Item(track_id=track_id, row=row, audio=audio, name=name))
    if not listing.items and not listing.skips:
        raise SourceError(f"{table_path}: no rows")
    return listing


def split_genre_tags(cell: object, separator: str = ";") -> list[str]:
    """The genre names of one cell (stripped, empty ones dropped, first occurrence kept); an
    empty or missing cell gives none."""
    if cell is None or (not isinstance(cell, str) and pd.isna(cell)):
        return []
    names = [name.strip() for name in str(cell).split(separator)]
    return list(dict.fromkeys(n for n in names if n and n.lower() not in ("nan", "none", "null")))


def _genre_tag_rows(
    table: pd.DataFrame, path: Path, option: dict[str, str]
) -> list[dict[str, float | None]]:
    """Per table row, its ``genre_tag_<name>`` values (see ``LabelsConfig.genre_tags``); empty
    without the option."""
    if not option:
        return []
    column, separator = str(option["column"]), str(option.get("separator", ";"))
    if column not in table.columns:
        raise SourceError(
            f"{path}: no column {column!r} (mapped by genre_tags.column); "
            f"columns are {', '.join(table.columns)}"
        )
    cells = [split_genre_tags(cell, separator) for cell in table[column].tolist()]
    names = sorted(set().union(*cells)) if cells else []
    return [
        {f"{GENRE_TAG_PREFIX}{name}": (float(name in found) if found else None) for name in names}
        for found in cells
    ]


def _genre_from_tags(tags: dict[str, float | None], mapping: dict[str, str]) -> str | None:
    """The genre ``mapping`` gives the one genre tag a row names, or None (none, several, or
    one the mapping does not know)."""
    named = [name.removeprefix(GENRE_TAG_PREFIX) for name, value in tags.items() if value]
    return str(mapping[named[0]]).strip() if len(named) == 1 and named[0] in mapping else None


def _join(table: pd.DataFrame, path: Path, key: str) -> pd.DataFrame:
    """``table`` with the columns of the table at ``path`` added by ``key`` (left join)."""
    other = read_table(path)
    if key not in other.columns or key not in table.columns:
        raise SourceError(f"{path}: join needs a {key!r} column in both tables")
    if other[key].duplicated().any():
        first = other.loc[other[key].duplicated(), key].iloc[0]
        raise SourceError(f"{path}: {key} {first!r} is listed twice")
    clash = sorted(set(other.columns) & set(table.columns) - {key})
    if clash:
        raise SourceError(f"{path}: column(s) {', '.join(clash)} already in the labels table")
    return table.merge(other, on=key, how="left")


build = run_source(LabelsConfig, list_items, "labels")
