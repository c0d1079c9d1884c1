"""Building a checked, resumable manifest from a source's listing (:func:`build_manifest`, the steps
are in :mod:`datamodules.sources.base`), and :func:`run_source`, which turns a source's config
class and lister into its ``build(config, out)``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from datamodules.audio import AudioError, audio_info, load_audio
from datamodules.builds import (
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
    ManifestError,
    provenance_column,
    read_manifest,
    write_manifest,
)
from datamodules.sources.cleaning import (
    LABEL_COLUMNS,
    has_features,
    has_label,
    map_label,
    merge_duplicates,
    to_float,
)
from datamodules.sources.items import Item, SourceConfig, SourceListing
from datamodules.sources.splits import SplitConfig, SplitLists, assign_splits

log = logging.getLogger(__name__)

AUDIO_DIR = "audio"
MAX_ROW_MESSAGES = 20  # per-row messages kept in summary.json


@dataclass
class BuildSummary:
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
    listing: SourceListing,
    out: str | os.PathLike,
    config: SourceConfig,
    source: str,
    download: Callable[[list[Item], Path], dict[str, Skip | None]] | None = None,
) -> BuildSummary:
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
    summary = BuildSummary(source=name, out=str(out), notes=dict(listing.notes))
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
    lister: Callable[[object], SourceListing],
    source: str,
    downloader: Callable[[object], Callable[[list[Item], Path], dict[str, Skip | None]]]
    | None = None,
) -> Callable[[Mapping[str, object] | None, str | os.PathLike], BuildSummary]:
    """Make a source's ``build(config_mapping, out)`` from its config class and lister."""

    def build(mapping: Mapping[str, object] | None, out: str | os.PathLike) -> BuildSummary:
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
