"""``csv``: feature/label tables keyed by Spotify track ID or ISRC, with local or downloaded audio.

How Kaggle-style Spotify dumps and other offline teacher tables become manifests with no API:

* one or more tables (CSV/TSV/Parquet); a table may carry a constant label for all its rows
  (``{path: happy.csv, mood: happy}``: "one CSV per mood playlist, combined into one dataset");
* any of the nine feature columns, a genre and/or a mood column, an artist column;
* audio from a local folder (matched by track id through ``audio_pattern``, or by a file-name
  column) or downloaded from a ``preview_url`` column into ``DIR/audio/<id>.mp3``.

A track in several tables with different labels is resolved by the common ``conflicts`` policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datamodules.audio import AUDIO_EXTENSIONS
from datamodules.manifest import FEATURES
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
from datamodules.sources.download import DownloadConfig, downloader

#: Manifest columns the ``columns`` mapping may name, and the table columns tried when unnamed.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "track_id": ("track_id", "id", "spotify_id", "isrc"),
    "artist": ("artist", "artists", "artist_name"),
    "genre": ("genre",),
    "mood": ("mood",),
    "preview_url": ("preview_url",),
    "audio_path": ("audio_path",),
    "split": (),
}


@dataclass
class CsvConfig(SourceConfig):
    """Options of the csv source (plus :class:`SourceConfig`'s).

    Attributes:
        tables: paths, or mappings ``{path, genre, mood, split}`` whose values apply to every row.
        columns: manifest column -> table column for ``track_id`` (a Spotify id or an ISRC),
            ``artist``, ``genre``, ``mood``, ``split``, ``preview_url``, ``audio_path`` (a file name
            or path under ``audio_dir``). Unnamed ones default to the usual column names.
        features: feature -> table column or ``{column, scale, offset}``; default: same-named.
        extra_columns: manifest column -> table column copied verbatim.
        split_map: table split value -> train/val/test.
        id_prefix: prefix of the manifest track id (e.g. ``spotify:``).
        audio_dir: local audio folder, searched recursively.
        audio_pattern: file stem of a track under ``audio_dir``, a format string over the row's
            columns and ``track_id`` (FMA: ``'{track_id:0>6}'`` finds ``000/000002.mp3``).
        download_previews: download ``preview_url`` when there is no local file.
        download: download options (workers, retries, backoff, timeout, max_mb).
    """

    tables: list[object] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    features: dict[str, object] = field(default_factory=dict)
    extra_columns: dict[str, str] = field(default_factory=dict)
    split_map: dict[str, str] = field(default_factory=dict)
    id_prefix: str = ""
    audio_dir: str | None = None
    audio_pattern: str = "{track_id}"
    extensions: list[str] = field(default_factory=lambda: list(AUDIO_EXTENSIONS))
    download_previews: bool = True
    download: DownloadConfig = field(default_factory=DownloadConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tables, str | dict):
            self.tables = [self.tables]
        if not self.tables:
            raise SourceError("tables is required (one or more CSV files)")
        check_mapping_names(self.columns, DEFAULT_COLUMNS, self.features)


def _table_spec(spec: object) -> tuple[Path, dict[str, str]]:
    if isinstance(spec, str):
        return Path(spec).expanduser(), {}
    if isinstance(spec, dict) and "path" in spec:
        constants = {k: str(v) for k, v in spec.items() if k != "path"}
        unknown = sorted(set(constants) - {"genre", "mood", "split", "artist"})
        if unknown:
            raise SourceError(f"tables: unknown key(s) {', '.join(unknown)} for {spec['path']}")
        return Path(str(spec["path"])).expanduser(), constants
    raise SourceError(f"tables: expected a path or {{path: ..., mood: ...}}, got {spec!r}")


def list_items(config: CsvConfig) -> SourceListing:
    """One item per table row (a track in several tables appears once per table)."""
    local: dict[str, Path] = {}
    audio_dir = Path(config.audio_dir).expanduser() if config.audio_dir else None
    if audio_dir is not None:
        if not audio_dir.is_dir():
            raise SourceError(f"{audio_dir}: audio_dir not found")
        for path in iter_audio_files(audio_dir, config.extensions):
            local.setdefault(path.stem, path)
            local.setdefault(path.name, path)
    listing = SourceListing()
    for spec in config.tables:
        path, constants = _table_spec(spec)
        table = read_table(path)
        available = list(table.columns)
        columns = {}
        for name, candidates in DEFAULT_COLUMNS.items():
            found = next((c for c in candidates if c in available), None)
            if found:
                columns[name] = found
        columns.update(config.columns)
        features = config.features or {f: f for f in FEATURES if f in available}
        check_columns(path, available, columns, features, config.extra_columns)
        if "track_id" not in columns:
            raise SourceError(
                f"{path}: no track id column (tried {', '.join(DEFAULT_COLUMNS['track_id'])}); "
                "set columns.track_id"
            )
        for line, record in enumerate(table.to_dict("records"), start=2):
            raw_id = str(record[columns["track_id"]]).strip()
            if not raw_id:
                listing.skips.append(Skip(f"{path.name}:{line}", "no track id", f"{path}:{line}"))
                continue
            track_id = f"{config.id_prefix}{raw_id}"
            row = record_row(
                record, columns, features, config.extra_columns, config.split_map, constants
            )
            item = Item(track_id=track_id, row=row, file_id=track_id, name=raw_id)
            if audio_dir is not None:
                try:
                    stem = config.audio_pattern.format_map({**record, "track_id": raw_id})
                except (KeyError, ValueError, IndexError) as err:
                    raise SourceError(f"audio_pattern {config.audio_pattern!r}: {err}") from err
                named = str(record.get(columns.get("audio_path", ""), "")).strip()
                if named:
                    candidate = audio_dir / named
                    item.audio = candidate if candidate.is_file() else local.get(Path(named).name)
                else:
                    item.audio = local.get(stem)
                if item.audio is not None:
                    item.name = item.audio.relative_to(audio_dir).as_posix()
            url = str(record.get(columns.get("preview_url", ""), "") or "").strip()
            if item.audio is None and url and config.download_previews:
                item.url = url
                row["provider"] = "preview_url"
            listing.items.append(item)
    return listing


def _downloader(config: CsvConfig):  # type: ignore[no-untyped-def]
    return downloader(config.download)


build = run_source(CsvConfig, list_items, "csv", downloader=_downloader)
