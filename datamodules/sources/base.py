"""What every source shares: turning a listing of items into a checked, resumable manifest.

A source only *lists* items (a :class:`SourceListing` of :class:`Item`: a track id, its
labels/features, and where its audio is: a local file or an http(s) URL). :func:`build_manifest`
does the rest, the same way for every source:

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

The pieces, one job each: ``items.py`` (what a source lists, its options), ``cleaning.py``
(labels, values, tracks listed twice), ``table_rows.py`` (a source's tables to rows),
``build.py`` (the build above, and :func:`run_source`), ``splits.py``, ``download.py``. Their
names are re-exported here, so a source imports everything it needs from this module.
"""

from __future__ import annotations

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
from datamodules.sources.build import (
    AUDIO_DIR,
    MAX_ROW_MESSAGES,
    BuildSummary,
    build_manifest,
    check_audio,
    run_source,
)
from datamodules.sources.cleaning import (
    CONFLICT_POLICIES,
    LABEL_COLUMNS,
    has_features,
    has_label,
    map_label,
    merge_duplicates,
    to_float,
)
from datamodules.sources.items import Item, SourceConfig, SourceListing, iter_audio_files
from datamodules.sources.table_rows import (
    check_columns,
    check_mapping_names,
    feature_column,
    feature_value,
    read_table,
    record_row,
)

__all__ = [
    "AUDIO_DIR",
    "CONFLICT_POLICIES",
    "LABEL_COLUMNS",
    "MANIFEST_NAME",
    "MAX_ROW_MESSAGES",
    "SKIPPED_NAME",
    "SUMMARY_NAME",
    "BuildSummary",
    "Item",
    "Skip",
    "SourceConfig",
    "SourceError",
    "SourceListing",
    "build_manifest",
    "check_audio",
    "check_columns",
    "check_mapping_names",
    "feature_column",
    "feature_value",
    "from_mapping",
    "has_features",
    "has_label",
    "iter_audio_files",
    "map_label",
    "merge_duplicates",
    "read_table",
    "record_row",
    "run_source",
    "to_float",
    "write_skipped",
    "write_summary",
]
