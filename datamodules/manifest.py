"""The manifest: the one contract between label sources and training.

One row per track. Every source writes this format and nothing downstream knows where a row came
from. Any label may be empty; the matching loss is masked for that row.

Columns
    track_id     unique string id
    audio_path   path to the audio file, relative to the manifest's folder (absolute also accepted)
    split        train / val / test
    artist       optional; splits keep an artist on one side
    genre, mood  optional class names
    <features>   optional floats, natural units (see ``FEATURE_RANGES``)
    tag_<name>   optional soft targets in [0, 1] (teacher tags)
    genre_tag_<name>  optional multi-label genre tags (AllMusic names kept verbatim, e.g.
                 ``genre_tag_Pop/Rock``): 1.0 / 0.0 on a row that has genre tags, empty on every
                 one of them for a row that has none (its genre-tag loss is masked)
    source       which importer wrote the row
    provenance_<feature>  where that row's feature value came from: ``human`` (listener
                 annotations, e.g. GTZAN tempo, 4Q arousal/valence signs), ``table`` (a feature
                 table, e.g. Echo Nest / Spotify values), ``synthetic`` (exact by construction) or
                 ``teacher:<name>`` (an offline analyser or model); absent: inferred from
                 ``source`` (``synthetic`` rows are synthetic, the rest ``table``)
    teacher_<feature>  the teacher's own value, kept even where a human/table value wins, so
                 evaluation can score the teacher against the ground truth
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from datamodules.io import atomic_path
from datamodules.schema import FEATURE_RANGES, FEATURE_UNITS, FEATURES  # noqa: F401 (re-exported)

SPLITS: tuple[str, ...] = ("train", "val", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("track_id", "audio_path", "split")
LABEL_COLUMNS: tuple[str, ...] = ("genre", "mood")
TEXT_COLUMNS: tuple[str, ...] = (
    "track_id",
    "audio_path",
    "split",
    "artist",
    "genre",
    "mood",
    "source",
)
COLUMNS: tuple[str, ...] = (*TEXT_COLUMNS, *FEATURES)
TAG_PREFIX = "tag_"
GENRE_TAG_PREFIX = "genre_tag_"
PROVENANCE_PREFIX = "provenance_"
TEACHER_PREFIX = "teacher_"
#: Provenance of values no teacher may overwrite.
GROUND_TRUTH: tuple[str, ...] = ("human", "table", "synthetic")


class ManifestError(ValueError):
    """A manifest that breaks the contract; the message names the file and the problem."""


def tag_columns(columns: Iterable[str]) -> list[str]:
    """The ``tag_<name>`` soft-target columns present, in their original order."""
    return [c for c in columns if c.startswith(TAG_PREFIX)]


def genre_tag_columns(columns: Iterable[str]) -> list[str]:
    """The ``genre_tag_<name>`` multi-label genre columns present, in their original order."""
    return [c for c in columns if c.startswith(GENRE_TAG_PREFIX)]


def provenance_column(feature: str) -> str:
    """The column saying where ``feature``'s values came from."""
    return f"{PROVENANCE_PREFIX}{feature}"


def feature_provenance(df: pd.DataFrame, feature: str) -> pd.Series:
    """Per row, where its ``feature`` value came from (NA where it has none); see the module doc."""
    has_value = df[feature].notna() if feature in df else pd.Series(False, index=df.index)
    column = provenance_column(feature)
    given = df[column].astype("string") if column in df else pd.Series(pd.NA, index=df.index)
    source = df["source"].astype("string") if "source" in df else pd.Series("", index=df.index)
    synthetic = source.fillna("").eq("synthetic").to_numpy(bool)
    inferred = pd.Series(["synthetic" if s else "table" for s in synthetic], index=df.index)
    result = given.fillna(inferred).astype("string")
    return result.where(has_value, pd.NA)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Add missing standard columns (empty) and put them in canonical order, extra columns last."""
    df = df.copy()
    for column in COLUMNS:
        if column not in df.columns:
            df[column] = pd.NA if column in TEXT_COLUMNS else float("nan")
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[[*COLUMNS, *extra]]


def read_manifest(path: str | os.PathLike, check_audio: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; return it with ``audio_path`` made absolute.

    Raises:
        ManifestError: one line naming the file and what is wrong (missing column, unknown split,
            duplicate track id, missing audio file, non-numeric or out-of-range feature).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={c: "string" for c in TEXT_COLUMNS}, keep_default_na=True)
    except Exception as err:  # pandas raises many types for malformed files
        raise ManifestError(f"{path}: cannot parse manifest ({type(err).__name__}: {err})") from err
    return validate(df, path, check_audio=check_audio)


def validate(df: pd.DataFrame, path: str | os.PathLike, check_audio: bool = True) -> pd.DataFrame:
    """Validate a manifest frame read from ``path`` (used for messages and relative audio paths)."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing required column(s) {', '.join(missing)}")
    df = normalise(df)
    if df.empty:
        raise ManifestError(f"{path}: manifest has no rows")
    for column in TEXT_COLUMNS:
        df[column] = df[column].astype("string").str.strip().replace("", pd.NA)

    def row_error(index: int, message: str) -> ManifestError:
        # +2: one for the header line, one because CSV lines count from 1.
        return ManifestError(
            f"{path}: line {index + 2} (track_id {df.at[index, 'track_id']}): {message}"
        )

    for index in df.index[df["track_id"].isna()]:
        raise row_error(index, "empty track_id")
    duplicated = df["track_id"].duplicated()
    if duplicated.any():
        raise row_error(df.index[duplicated][0], "duplicate track_id")
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        index = df.index[bad_split][0]
        raise row_error(
            index, f"unknown split {df.at[index, 'split']!r} (expected one of {', '.join(SPLITS)})"
        )
    for column in [*FEATURES, *tag_columns(df.columns), *genre_tag_columns(df.columns)]:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].notna() & (df[column].astype("string").str.strip() != "")
        if bad.any():
            index = df.index[bad][0]
            raise row_error(index, f"non-numeric {column} value {df.at[index, column]!r}")
        low, high = FEATURE_RANGES.get(column, (0.0, 1.0))
        out = (values < low) | (values > high)
        if out.any():
            index = df.index[out][0]
            raise row_error(index, f"{column}={values[index]} outside [{low}, {high}]")
        df[column] = values.astype("float64")
    root = path.parent.resolve()
    df["audio_path"] = [
        str(p if os.path.isabs(p) else (root / p)) for p in df["audio_path"].astype(str)
    ]
    if check_audio:
        for index, audio in zip(df.index, df["audio_path"], strict=True):
            if not os.path.isfile(audio):
                raise row_error(index, f"audio file not found: {audio}")
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` atomically (temp file + rename) with ``audio_path`` relative to the manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = normalise(df)
    root = path.parent.resolve()

    def relative(audio: str) -> str:
        # In memory, paths are absolute or relative to the working directory; on disk, relative
        # to the manifest.
        if pd.isna(audio):
            return audio
        try:
            return str(Path(audio).resolve().relative_to(root))
        except ValueError:  # outside the manifest's folder: keep it absolute
            return audio

    df["audio_path"] = [relative(a) for a in df["audio_path"]]
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return path


def label_names(df: pd.DataFrame, column: str) -> list[str]:
    """Sorted class names of ``column`` in the train split (what the head is built for)."""
    train = df.loc[df["split"] == "train", column].dropna()
    return sorted(train.astype(str).unique().tolist())
