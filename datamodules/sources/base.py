"""What every source shares: turning a listing of items into a checked, resumable manifest.

A source only *lists* items (:class:`Item`: a track id, its labels/features, and where its audio
is: a local file or an http(s) URL). :func:`build_manifest` does the rest, the same way for every
source:

1. rows already in ``DIR/manifest.csv`` whose audio still exists are reused (no download, no
   decode);
2. remote audio is downloaded into ``DIR/audio/<id>.<ext>`` (bounded concurrency, retries, temp file
   + rename; see :mod:`datamodules.sources.download`);
3. every new audio file is decoded once through :mod:`datamodules.audio`; bad ones go to
   ``DIR/skipped.csv`` with a one-line reason;
4. splits are assigned (:mod:`datamodules.sources.splits`) and the manifest is written atomically
   through :func:`datamodules.manifest.write_manifest`, every ``save_every`` rows and at the end,
   so a killed build loses at most those rows and a re-run finishes the rest;
5. a summary (listed, labelled, with features, with audio, skipped by reason) is returned, printed
   by the script and saved as ``DIR/summary.json``.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from datamodules.audio import AudioError, audio_info, load_audio
from datamodules.builds import (  # noqa: F401 (re-exported for the sources)
    MANIFEST_NAME,
    SKIPPED_NAME,
    SUMMARY_NAME,
    Skip,
    SourceError,
    from_mapping,
    write_skipped,
    write_summary,
)
from datamodules.manifest import (
    FEATURE_RANGES,
    FEATURES,
    GROUND_TRUTH,
    SPLITS,
    ManifestError,
    genre_tag_columns,
    provenance_column,
    read_manifest,
    write_manifest,
)
from datamodules.sources.splits import SplitConfig, SplitLists, assign_splits

log = logging.getLogger(__name__)

AUDIO_DIR = "audio"
LABEL_COLUMNS: tuple[str, ...] = ("genre", "mood")
MAX_ROW_MESSAGES = 20  # per-row messages kept in summary.json


@dataclass
class Item:
    """One listed track.

    Attributes:
        track_id: unique id in the manifest (prefix it with the source, e.g. ``fma:2``).
        row: manifest values (artist, genre, mood, features, ``split`` if the source fixes it, and
            any extra columns such as ``provider``).
        audio: a local audio file, or None.
        url: an http(s) URL to download when ``audio`` is None.
        file_id: the downloaded file's name stem, derived from ids only (never titles).
        name: the audio path relative to the source root, for split lists and group regexes.
    """

    track_id: str
    row: dict[str, object] = field(default_factory=dict)
    audio: Path | None = None
    url: str | None = None
    file_id: str | None = None
    name: str | None = None
    fetched: bool = False  # set by the downloader when this build downloaded the file
    no_audio: str = "no local file or preview URL"  # skip detail when there is neither


@dataclass
class Listing:
    """What a source found: items to build, items already rejected, and counters for the summary."""

    items: list[Item] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


@dataclass
class SourceConfig:
    """Options every source accepts (YAML keys at the top level of its config).

    Attributes:
        name: value of the manifest's ``source`` column (default: the source type).
        min_duration: audio shorter than this many seconds is skipped.
        split: how rows get their split (see :class:`SplitConfig`).
        label_map: column -> {source label: project label}; a label mapped to null/"" is cleared.
        only_mapped: clear labels that ``label_map`` does not name (for that column).
        lowercase_labels: lower-case genre and mood names (``Happy`` -> ``happy``) before mapping.
        keep_unlabelled: keep rows with no genre, mood or feature (default: skip them).
        conflicts: a track listed twice with different labels (two moods' playlists, two tables):
            ``majority`` (label listed most often, ties to the first listed), ``first``, ``drop``
            (label left empty, row kept) or ``skip`` (see :func:`merge_duplicates`).
        save_every: write the manifest after this many new rows (a killed build loses at most
            these).
        progress: show tqdm progress bars.
        feature_provenance: what this source's feature values are, written per value to
            ``provenance_<feature>``: ``table`` (a feature table: Echo Nest, Spotify), ``human``
            (listener annotations) or ``synthetic``.
    """

    name: str = ""
    min_duration: float = 1.0
    split: SplitConfig = field(default_factory=SplitConfig)
    label_map: dict[str, dict[str, str | None]] = field(default_factory=dict)
    only_mapped: bool = False
    lowercase_labels: bool = False
    keep_unlabelled: bool = False
    conflicts: str = "majority"
    save_every: int = 50
    progress: bool = True
    feature_provenance: str = "table"

    def __post_init__(self) -> None:
        if self.feature_provenance not in GROUND_TRUTH:
            raise SourceError(
                f"feature_provenance must be one of {', '.join(GROUND_TRUTH)}, "
                f"not {self.feature_provenance!r}"
            )


# ---------------------------------------------------------------------------------------------
# Labels and values


def map_label(value: object, column: str, config: SourceConfig) -> str | None:
    """Clean a label and apply ``label_map``; empty/NaN -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if not text:
        return None
    if config.lowercase_labels:
        text = text.lower()
    mapping = config.label_map.get(column) or {}
    if text in mapping:
        mapped = mapping[text]
        return str(mapped).strip() or None if mapped is not None else None
    folded = {str(k).casefold(): v for k, v in mapping.items()}
    if text.casefold() in folded:
        mapped = folded[text.casefold()]
        return str(mapped).strip() or None if mapped is not None else None
    return None if config.only_mapped and mapping else text


def to_float(value: object) -> float | None:
    """A finite float, or None for empty/NaN/non-numeric values."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def has_label(row: Mapping[str, object]) -> bool:
    """A genre or mood, or multi-label genre tags (``genre_tag_<name>``)."""
    if any(row.get(c) not in (None, "") for c in LABEL_COLUMNS):
        return True
    return any(to_float(row[c]) is not None for c in genre_tag_columns(row))


def has_features(row: Mapping[str, object]) -> bool:
    return any(to_float(row.get(f)) is not None for f in FEATURES)


#: How a track listed twice with different labels (two moods' playlists, two tables) is resolved.
CONFLICT_POLICIES: tuple[str, ...] = ("majority", "first", "drop", "skip")


def merge_duplicates(
    items: list[Item], policy: str = "majority"
) -> tuple[list[Item], list[Skip], dict[str, int]]:
    """Merge items listed more than once under one track id.

    Other values: the first non-empty one wins (in listing order). A label column (genre, mood) with
    different values is resolved by ``policy``: ``majority`` (the label listed most often; a tie
    goes to the one listed first), ``first``, ``drop`` (label left empty, the row stays for its
    other labels and features) or ``skip`` (track left out). Returns (items, skips, notes) where
    notes count ``tracks listed twice`` and ``<column> conflicts``.
    """
    if policy not in CONFLICT_POLICIES:
        raise SourceError(f"conflict policy must be one of {', '.join(CONFLICT_POLICIES)}")
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.track_id, []).append(item)
    merged: list[Item] = []
    skips: list[Skip] = []
    notes: Counter[str] = Counter()
    for track_id, group in groups.items():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        notes["tracks listed twice"] += 1
        row: dict[str, object] = {}
        for other in group:
            for key, value in other.row.items():
                if row.get(key) in (None, "") and value not in (None, ""):
                    row[key] = value
        conflict = None
        for column in LABEL_COLUMNS:
            values = [str(o.row[column]) for o in group if o.row.get(column) not in (None, "")]
            if len(set(values)) <= 1:
                continue
            notes[f"{column} conflicts"] += 1
            counts = Counter(values)
            if policy == "majority":
                row[column] = max(counts, key=lambda v: (counts[v], -values.index(v)))
            elif policy == "first":
                row[column] = values[0]
            elif policy == "drop":
                row[column] = None
            else:
                conflict = f"{column}: {' / '.join(sorted(counts))}"
        if conflict:
            skips.append(Skip(track_id, "conflicting labels", conflict, first.name or ""))
            continue
        first.row = row
        first.url = first.url or next((o.url for o in group if o.url), None)
        first.audio = first.audio or next((o.audio for o in group if o.audio), None)
        merged.append(first)
    return merged, skips, dict(notes)


# ---------------------------------------------------------------------------------------------
# Summary


@dataclass
class Summary:
    """Counts of one build. ``skipped`` maps reason -> count."""

    source: str
    out: str
    listed: int = 0
    labelled: int = 0
    with_features: int = 0
    with_audio: int = 0
    reused: int = 0
    checked: int = 0
    downloaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"{self.source}: {self.out}/{MANIFEST_NAME}",
            f"  tracks listed      {self.listed}",
            f"  labelled           {self.labelled}",
            f"  with features      {self.with_features}",
            f"  with audio         {self.with_audio}  (reused {self.reused}, decoded "
            f"{self.checked}, downloaded {self.downloaded})",
            "  splits             "
            + (", ".join(f"{k} {v}" for k, v in self.splits.items()) or "-"),
            f"  skipped            {sum(self.skipped.values())}",
        ]
        lines += [f"    {reason:<24} {n}" for reason, n in sorted(self.skipped.items())]
        lines += [f"  {note:<18} {n}" for note, n in sorted(self.notes.items())]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The build


def check_audio(path: Path, min_duration: float) -> str | None:
    """Decode ``path`` once (at its own rate); None when usable, else a one-line reason."""
    try:
        info = audio_info(path)
        load_audio(
            path, sample_rate=info.sample_rate, min_duration=min_duration, allow_silence=False
        )
    except AudioError as err:
        return str(err)
    return None


def _existing_rows(manifest: Path) -> dict[str, dict[str, object]]:
    """Rows of a previous (possibly interrupted) build whose audio still exists, by track id."""
    if not manifest.is_file():
        return {}
    try:
        df = read_manifest(manifest, check_audio=False)
    except ManifestError as err:
        log.warning("ignoring unreadable previous manifest: %s", err)
        return {}
    rows = {}
    for record in df.astype(object).where(df.notna(), None).to_dict("records"):
        if os.path.isfile(str(record["audio_path"])):
            rows[str(record["track_id"])] = record
    return rows


def _previous_bad_audio(skipped: Path) -> dict[str, Skip]:
    """Files a previous build found undecodable and that have not changed since (by mtime)."""
    if not skipped.is_file():
        return {}
    try:
        frame = pd.read_csv(skipped, dtype=str, keep_default_na=False)
        written = skipped.stat().st_mtime
        return {
            r["track_id"]: Skip(r["track_id"], r["reason"], r["detail"], r["item"])
            for r in frame.to_dict("records")
            if r["reason"] == "bad audio"
            and os.path.isfile(r["item"])
            and os.path.getmtime(r["item"]) < written
        }
    except (OSError, KeyError, ValueError, pd.errors.ParserError):
        return {}


class _Rows:
    """The rows built so far; writes the manifest with provisional splits every ``save_every``."""

    def __init__(self, manifest: Path, split: SplitConfig, source: str, save_every: int) -> None:
        self.manifest, self.split, self.source = manifest, split, source
        self.save_every = max(1, int(save_every))
        self.rows: dict[str, dict[str, object]] = {}
        self.unsaved = 0

    def add(self, track_id: str, row: dict[str, object]) -> None:
        self.rows[track_id] = row
        self.unsaved += 1
        if self.unsaved >= self.save_every:
            self.save()

    def frame(self) -> pd.DataFrame:
        ordered = [self.rows[k] for k in sorted(self.rows)]
        splits = assign_splits(ordered, self.split)
        df = pd.DataFrame(ordered).drop(columns=["group_name"], errors="ignore")
        if df.empty:
            return df
        df["split"] = splits
        if "source" not in df.columns or df["source"].isna().any():
            df["source"] = df.get("source", pd.Series(index=df.index, dtype=object)).fillna(
                self.source
            )
        return df

    def save(self) -> pd.DataFrame:
        df = self.frame()
        if not df.empty:
            write_manifest(df, self.manifest)
        self.unsaved = 0
        return df


def build_manifest(
    listing: Listing,
    out: str | os.PathLike,
    config: SourceConfig,
    source: str,
    download: Callable[[list[Item], Path], dict[str, Skip | None]] | None = None,
) -> Summary:
    """Build ``out/manifest.csv`` from a source's listing (see the module docstring).

    Args:
        listing: the items the source found and the ones it already rejected.
        out: output folder (created).
        config: common options.
        source: the source type (default for the ``source`` column).
        download: fetches remote items into ``out/audio`` and returns track_id -> Skip or None;
            required when any item has a ``url``.

    Returns:
        The build's :class:`Summary` (also saved as ``out/summary.json``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = config.name or source
    manifest = out / MANIFEST_NAME
    skips = list(listing.skips)
    summary = Summary(source=name, out=str(out), notes=dict(listing.notes))
    previous = _existing_rows(manifest)
    known_bad = _previous_bad_audio(out / SKIPPED_NAME)
    lists = SplitLists({k: Path(v) for k, v in config.split.lists.items()})
    rows = _Rows(manifest, config.split, name, config.save_every)

    # Clean labels and features, then merge tracks listed twice (e.g. in two moods' playlists).
    for item in listing.items:
        row = dict(item.row)
        for column in LABEL_COLUMNS:
            row[column] = map_label(row.get(column), column, config)
        for feature in FEATURES:
            if row.get(feature) is None:
                continue
            value = to_float(row[feature])
            low, high = FEATURE_RANGES[feature]
            if value is None or not low <= value <= high:
                dropped = summary.notes.get("feature values dropped", 0) + 1
                summary.notes["feature values dropped"] = dropped
                if dropped <= MAX_ROW_MESSAGES:  # the count says the rest
                    listing.messages.append(
                        f"{item.track_id}: {feature}={row[feature]!r} is not a number in "
                        f"[{low:g}, {high:g}]; left empty"
                    )
                value = None
            row[feature] = value
            if value is not None:
                row[provenance_column(feature)] = config.feature_provenance
        item.row = row
    items, conflict_skips, notes = merge_duplicates(listing.items, config.conflicts)
    skips += conflict_skips
    for key, count in notes.items():
        summary.notes[key] = summary.notes.get(key, 0) + count

    # Reject the useless items up front and fix the splits that lists decide.
    seen: set[str] = {s.track_id for s in conflict_skips}
    todo: list[Item] = []
    for item in items:
        seen.add(item.track_id)
        row = item.row
        summary.labelled += has_label(row)
        summary.with_features += has_features(row)
        if not (config.keep_unlabelled or has_label(row) or has_features(row)):
            skips.append(
                Skip(item.track_id, "no label", "no genre, mood or feature", item.name or "")
            )
            continue
        if lists and row.get("split") is None:
            listed_split = lists.lookup(item.name or "")
            if listed_split:
                row["split"] = listed_split
            elif config.split.unlisted == "skip":
                skips.append(
                    Skip(
                        item.track_id,
                        "not in split lists",
                        "in none of split.lists",
                        item.name or "",
                    )
                )
                continue
            elif config.split.unlisted != "assign":
                row["split"] = config.split.unlisted
        row["track_id"] = item.track_id
        row.setdefault("source", name)
        row["group_name"] = item.name or item.file_id or item.track_id
        item.row = row
        todo.append(item)
    summary.listed = len(seen) + sum(1 for s in listing.skips if s.track_id not in seen)

    # Reuse rows whose audio was already checked; everything else needs (download and) a decode.
    fresh: list[Item] = []
    for item in todo:
        old = previous.get(item.track_id)
        local = str(item.audio.resolve()) if item.audio is not None else None
        if old is not None and (local is None or os.path.abspath(str(old["audio_path"])) == local):
            item.row["audio_path"] = str(old["audio_path"])
            for key in ("provider",):
                if old.get(key) is not None and item.row.get(key) is None:
                    item.row[key] = old[key]
            rows.rows[item.track_id] = item.row
            summary.reused += 1
        else:
            fresh.append(item)
    # Rows of a previous build that this listing no longer has are kept: nothing built is lost.
    for track_id, old in previous.items():
        if track_id not in seen:
            rows.rows[track_id] = {k: v for k, v in old.items()}

    for item in fresh:
        if item.audio is None and not item.url:
            skips.append(Skip(item.track_id, "no audio", item.no_audio, item.name or ""))
    local = [item for item in fresh if item.audio is not None]
    remote = [item for item in fresh if item.audio is None and item.url]
    if remote and download is None:
        raise SourceError(f"{name}: items have URLs but the source gave no downloader")
    bar = tqdm(
        total=len(local) + len(remote),
        desc=f"{name}: {'downloading and ' if remote else ''}checking audio",
        unit="file",
        disable=not config.progress,
    )

    def check(batch: list[Item]) -> None:
        for item in batch:
            bar.update()
            if item.audio is None:
                continue
            old_skip = known_bad.get(item.track_id)
            if old_skip is not None and old_skip.item == str(item.audio):
                skips.append(old_skip)  # unchanged since it was found bad: no second decode
                continue
            reason = check_audio(item.audio, config.min_duration)
            summary.checked += 1
            if reason is not None:
                skips.append(Skip(item.track_id, "bad audio", reason, str(item.audio)))
                if item.url and item.audio.parent == out / AUDIO_DIR:
                    item.audio.unlink(missing_ok=True)  # a re-run downloads it again
                continue
            item.row["audio_path"] = str(item.audio.resolve())
            rows.add(item.track_id, item.row)

    check(local)
    if remote:
        audio_dir = out / AUDIO_DIR
        audio_dir.mkdir(exist_ok=True)
        for stale in audio_dir.glob("*.part"):  # left by a killed build
            stale.unlink(missing_ok=True)
        # Download and check in chunks, so the manifest grows (and is saved) while downloading.
        chunk = max(1, config.save_every)
        for start in range(0, len(remote), chunk):
            batch = remote[start : start + chunk]
            results = download(batch, audio_dir)
            summary.downloaded += sum(1 for it in batch if it.fetched)
            skips.extend(r for r in (results.get(it.track_id) for it in batch) if r is not None)
            check(batch)
    bar.close()

    df = rows.save()
    if df.empty:
        write_skipped(out / SKIPPED_NAME, skips)
        raise SourceError(f"{name}: no usable track (see {out / SKIPPED_NAME})")
    write_skipped(out / SKIPPED_NAME, skips)
    summary.with_audio = len(df)
    summary.skipped = dict(Counter(s.reason for s in skips))
    summary.splits = {k: int(v) for k, v in df["split"].value_counts().sort_index().items()}
    write_summary(out / SUMMARY_NAME, {**asdict(summary), "messages": listing.messages})
    return summary


def run_source(
    config_cls: type,
    lister: Callable[[object], Listing],
    source: str,
    downloader: Callable[[object], Callable[[list[Item], Path], dict[str, Skip | None]]]
    | None = None,
) -> Callable[[Mapping[str, object] | None, str | os.PathLike], Summary]:
    """Make a source's ``build(config_mapping, out)`` from its config class and lister."""

    def build(mapping: Mapping[str, object] | None, out: str | os.PathLike) -> Summary:
        config = from_mapping(config_cls, mapping, f"{source} config")
        listing = lister(config)
        for message in listing.messages:
            log.warning("%s", message)
        return build_manifest(
            listing,
            out,
            config,
            source,
            download=downloader(config) if downloader else None,
        )

    build.__doc__ = f"Build a manifest from the {source!r} source."
    build.config_class = config_cls  # type: ignore[attr-defined]  (lets tools check configs)
    return build


def iter_audio_files(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted, hidden files ignored)."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")
    )


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
