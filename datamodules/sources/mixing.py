"""Merge several manifests into one training manifest with group-aware, seeded splits.

Each input is one *source*: a manifest written by an importer (``scripts/build_dataset.py``) or any
CSV with ``track_id`` and ``audio_path``. A :class:`MixSpec` says, per source, how to rename label
values (so ``Electronic`` in one set and ``electronic`` in another train one class) and how rows
are grouped for splitting, with the importers' own split options
(:class:`datamodules.sources.splits.SplitConfig`):

* ``group_column: artist``: rows of one artist stay together;
* ``group_regex: '(\\d+)$'`` + ``group_block: 10``: blocks of file numbers stay together (GTZAN
  repeats artists in contiguous file numbers);
* neither: every row is its own group.

Splits are drawn once over the union of all sources (so an artist present in two sources still
lands in one split), stratified by ``source`` and label, from a seed. Labels a source does not
have stay empty, so that head's loss is masked for its rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd
import yaml

from datamodules.audio import AudioError, audio_info
from datamodules.manifest import (
    FEATURES,
    LABEL_COLUMNS,
    ManifestError,
    genre_tag_columns,
    tag_columns,
    validate,
)
from datamodules.sources.splits import SplitConfig, assign_splits, group_key

#: Options of SplitConfig a source may set; fractions and seed belong to the whole mix.
GROUP_OPTIONS = ("group_column", "group_regex", "group_block", "stratify")


@dataclass
class SourceSpec:
    """How one input manifest enters the mix.

    Args:
        name: written to the ``source`` column (overrides what the file says).
        manifest: path of the manifest (relative paths start at the mix's data root).
        split: grouping options of :class:`SplitConfig` (``group_column``, ``group_regex``,
            ``group_block``, ``stratify``).
        labels: label renames, ``{column: {old: new}}``; a value mapped to ``""`` is dropped (left
            empty, so that head is masked for the row).
        keep_split: keep the manifest's own ``split`` instead of drawing a new one.
    """

    name: str
    manifest: str
    split: dict = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    keep_split: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.split) - set(GROUP_OPTIONS))
        if unknown:
            raise ValueError(
                f"source {self.name}: unknown split option(s) {', '.join(unknown)} "
                f"(known: {', '.join(GROUP_OPTIONS)})"
            )
        SplitConfig(**self.split)  # fail early on a bad regex or block size

    def split_config(self, seed: int, val_fraction: float, test_fraction: float) -> SplitConfig:
        return SplitConfig(
            **self.split, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
        )


@dataclass
class MixSpec:
    """Several sources, shared label renames and the split recipe.

    Args:
        sources: the inputs (:class:`SourceSpec` or mappings of its fields).
        labels: label renames applied to every source after its own, ``{column: {old: new}}``.
        seed: split seed; the same seed and inputs give the same splits.
        val_fraction, test_fraction: share of each (source, label) stratum, approximately (whole
            groups move).
    """

    sources: list[SourceSpec]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        self.sources = [s if isinstance(s, SourceSpec) else SourceSpec(**s) for s in self.sources]
        if not self.sources:
            raise ValueError("a mix needs at least one source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {', '.join(names)}")
        SplitConfig(val_fraction=self.val_fraction, test_fraction=self.test_fraction)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> MixSpec:
        """Read a spec from YAML (see ``configs/mix/real.yaml``)."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(
                f"{path}: cannot read mix spec ({' '.join(str(err).split())})"
            ) from err
        if not isinstance(data, Mapping) or "sources" not in data:
            raise ValueError(f"{path}: a mix spec needs a 'sources' list")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err


# -- loading one source ---------------------------------------------------------------------------
def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception as err:  # pandas raises many types for malformed files
        raise ManifestError(f"{path}: cannot parse ({type(err).__name__}: {err})") from err


def load_source(spec: SourceSpec, root: str | os.PathLike = ".") -> pd.DataFrame:
    """Read one source manifest, rename its labels and validate it (absolute audio paths).

    Rows without a ``split`` get a placeholder (``train``) so they validate; :func:`mix` draws the
    real split unless ``keep_split``.
    """
    path = Path(spec.manifest).expanduser()
    if not path.is_absolute():
        path = Path(root).expanduser() / path
    df = _read_table(path)
    if "split" not in df or not spec.keep_split:
        df["split"] = "train"
    for column, mapping in spec.labels.items():
        if column not in df:
            raise ManifestError(f"{path}: label map for missing column {column!r}")
        df[column] = rename_labels(df[column], mapping)
    df["source"] = spec.name
    return validate(df, path, check_audio=False)


def rename_labels(values: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """Map label values by name (stripped); unmapped values stay; ``""`` empties the label."""
    clean = values.astype("string").str.strip()
    mapped = clean.map(lambda v: mapping.get(v, v) if not pd.isna(v) else v)
    return mapped.astype("string").replace("", pd.NA)


def unreadable_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``track_id, audio_path, reason`` of rows whose file is missing or has no readable header.

    Reads headers only (cheap); a file whose header reads but whose samples do not decode is
    excluded by the audio cache before training, with its reason.
    """
    bad = []
    for track_id, audio in zip(df["track_id"], df["audio_path"], strict=True):
        try:
            audio_info(audio)
        except AudioError as err:
            bad.append({"track_id": track_id, "audio_path": audio, "reason": str(err)})
    return pd.DataFrame(bad, columns=["track_id", "audio_path", "reason"])


# -- the mix --------------------------------------------------------------------------------------
@dataclass
class MixResult:
    manifest: pd.DataFrame  # the mixed manifest (absolute audio paths)
    skipped: pd.DataFrame  # track_id, audio_path, source, reason

    def summary(self) -> pd.DataFrame:
        """Rows per source and split."""
        return self.manifest.groupby(["source", "split"]).size().unstack(fill_value=0)


def split_rows(
    df: pd.DataFrame, configs: Mapping[str, SplitConfig], seed: int, val: float, test: float
) -> pd.Series:
    """Group-aware splits over the rows of all sources at once.

    Each row's group comes from its source's :class:`SplitConfig` (artist, file-number block or
    the track itself); the groups are then split together, stratified by source and label, so a
    group shared by two sources (the same artist) still lands in a single split.
    """
    strata_columns = {
        name: _stratify_column(df[df["source"] == name], config) for name, config in configs.items()
    }
    table = []
    for row in df.to_dict("records"):
        config = configs[row["source"]]
        plain = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        column = strata_columns[row["source"]]
        label = plain.get(column) if column else None
        table.append(
            {
                "track_id": plain["track_id"],
                "group": group_key(
                    {**plain, "audio_path": Path(str(row["audio_path"])).name}, config
                ),
                "stratum": f"{row['source']}:{label or ''}",
            }
        )
    union = SplitConfig(
        val_fraction=val, test_fraction=test, seed=seed, group_column="group", stratify="stratum"
    )
    return pd.Series(assign_splits(table, union), index=df.index, dtype="string")


def _stratify_column(rows: pd.DataFrame, config: SplitConfig) -> str | None:
    if config.stratify == "none":
        return None
    if config.stratify != "auto":
        return config.stratify
    for column in LABEL_COLUMNS:
        if column in rows and rows[column].notna().any():
            return column
    return None


def mix(spec: MixSpec, root: str | os.PathLike = ".", check_audio: bool = True) -> MixResult:
    """Merge the sources of ``spec`` into one manifest with group-aware splits.

    Rows without any label or feature target are skipped (they would train nothing), as are rows
    whose audio is missing or unreadable (when ``check_audio``); each skip carries a reason.
    """
    frames, skipped, configs = [], [], {}
    for source in spec.sources:
        df = load_source(source, root)
        for column, mapping in spec.labels.items():
            if column in df:
                df[column] = rename_labels(df[column], mapping)
        labels = [*LABEL_COLUMNS, *FEATURES, *tag_columns(df.columns)]
        labels += genre_tag_columns(df.columns)  # multi-label genre tags are targets too
        targets = df[labels].notna().any(axis=1)
        skipped += [
            {
                "track_id": t,
                "audio_path": a,
                "source": source.name,
                "reason": "no genre, mood, feature or tag target",
            }
            for t, a in zip(
                df.loc[~targets, "track_id"], df.loc[~targets, "audio_path"], strict=True
            )
        ]
        df = df[targets]
        if check_audio:
            bad = unreadable_rows(df)
            skipped += [{**r, "source": source.name} for r in bad.to_dict("records")]
            df = df[~df["track_id"].isin(bad["track_id"])]
        configs[source.name] = source.split_config(spec.seed, spec.val_fraction, spec.test_fraction)
        frames.append(df)
    manifest = pd.concat(frames, ignore_index=True)
    duplicated = manifest["track_id"].duplicated()
    if duplicated.any():
        track_id = manifest.loc[duplicated, "track_id"].iloc[0]
        raise ManifestError(f"track_id {track_id} appears twice (in more than one source?)")
    drawn = ~manifest["source"].isin([s.name for s in spec.sources if s.keep_split])
    if drawn.any():
        manifest.loc[drawn, "split"] = split_rows(
            manifest[drawn], configs, spec.seed, spec.val_fraction, spec.test_fraction
        )
    columns = ["track_id", "audio_path", "source", "reason"]
    return MixResult(manifest=manifest, skipped=pd.DataFrame(skipped, columns=columns))
