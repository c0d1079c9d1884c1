"""``fma``: the Free Music Archive's metadata and an ``fma_small``/``fma_medium`` audio tree.

Reads FMA's own ``tracks.csv`` (two header rows: ``track``/``set``/``artist`` ... over
``genre_top``/``split``/``name`` ...) and ``echonest.csv`` (three header rows:
``echonest`` / ``audio_features`` / ``acousticness`` ...), as published in ``fma_metadata.zip``.

* genre: ``track.genre_top`` (FMA's 16 top-level genres; rename with ``label_map``);
* features: Echo Nest ``audio_features`` (Spotify's predecessor, same definitions): acousticness,
  danceability, energy, instrumentalness, liveness, speechiness, tempo, valence; no loudness;
* split: ``set.split`` (training/validation/test), which FMA made artist-disjoint;
* audio: ``<audio_dir>/<first 3 digits>/<6-digit id>.mp3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datamodules.manifest import FEATURES
from datamodules.sources.base import (
    Item,
    Skip,
    SourceConfig,
    SourceError,
    SourceListing,
    read_table,
    run_source,
    to_float,
)

SUBSETS: tuple[str, ...] = ("small", "medium", "large")
FMA_SPLITS: dict[str, str] = {"training": "train", "validation": "val", "test": "test"}


@dataclass
class FmaConfig(SourceConfig):
    """Options of the fma source (plus :class:`SourceConfig`'s).

    Attributes:
        metadata_dir: the unpacked ``fma_metadata`` folder (holds tracks.csv and echonest.csv).
        tracks, echonest: override the two tables' paths.
        audio_dir: the unpacked ``fma_small`` or ``fma_medium`` folder.
        subset: keep tracks of this subset (``medium`` includes ``small``); None keeps all.
        require_features: keep only tracks that have Echo Nest features.
        use_fma_split: take FMA's split (else the seeded split of ``split``).
    """

    metadata_dir: str = ""
    tracks: str | None = None
    echonest: str | None = None
    audio_dir: str = ""
    subset: str | None = "small"
    require_features: bool = False
    use_fma_split: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.audio_dir:
            raise SourceError("audio_dir is required (the fma_small or fma_medium folder)")
        if not (self.metadata_dir or self.tracks):
            raise SourceError("metadata_dir is required (the folder with tracks.csv)")
        if self.subset is not None and self.subset not in SUBSETS:
            raise SourceError(f"subset must be one of {', '.join(SUBSETS)} or null")


def _column(table, path: Path, *key: str):  # type: ignore[no-untyped-def]
    if key not in table.columns:
        raise SourceError(f"{path}: no column {'/'.join(key)} (is this FMA's {path.name}?)")
    return table[key]


def audio_path(audio_dir: Path, track_id: int) -> Path:
    """Where FMA keeps a track: ``<audio_dir>/000/000002.mp3``."""
    name = f"{track_id:06d}"
    return audio_dir / name[:3] / f"{name}.mp3"


def list_items(config: FmaConfig) -> SourceListing:
    """One item per track of the subset."""
    meta = Path(config.metadata_dir).expanduser()
    tracks_path = Path(config.tracks).expanduser() if config.tracks else meta / "tracks.csv"
    echonest_path = Path(config.echonest).expanduser() if config.echonest else meta / "echonest.csv"
    audio_dir = Path(config.audio_dir).expanduser()
    if not audio_dir.is_dir():
        raise SourceError(f"{audio_dir}: audio_dir not found")
    tracks = read_table(tracks_path, header=[0, 1], index_col=0)
    genre = _column(tracks, tracks_path, "track", "genre_top")
    split = _column(tracks, tracks_path, "set", "split")
    subset = _column(tracks, tracks_path, "set", "subset")
    artist = _column(tracks, tracks_path, "artist", "name")
    features: dict[str, dict[str, str]] = {}
    if echonest_path.is_file():
        echonest = read_table(echonest_path, header=[0, 1, 2], index_col=0)
        for name in FEATURES:
            key = ("echonest", "audio_features", name)
            if key in echonest.columns:
                features[name] = dict(zip(echonest.index.astype(str), echonest[key], strict=True))
        if not features:
            raise SourceError(f"{echonest_path}: no echonest/audio_features columns")
    elif config.echonest:
        raise SourceError(f"{echonest_path}: table not found")

    allowed = set(SUBSETS[: SUBSETS.index(config.subset) + 1]) if config.subset else None
    listing = SourceListing()
    for raw_id in tracks.index.astype(str):
        if allowed is not None and subset[raw_id] not in allowed:
            continue
        if not raw_id.strip().isdigit():
            listing.skips.append(
                Skip(f"fma:{raw_id}", "bad track id", f"{tracks_path}: {raw_id!r}")
            )
            continue
        track_id = f"fma:{int(raw_id)}"
        row: dict[str, object] = {
            "genre": genre[raw_id] or None,
            "artist": artist[raw_id] or None,
            **{name: to_float(values.get(raw_id)) for name, values in features.items()},
        }
        if config.require_features and all(row.get(f) is None for f in features):
            listing.skips.append(Skip(track_id, "no features", "not in echonest.csv"))
            continue
        if config.use_fma_split:
            row["split"] = FMA_SPLITS.get(split[raw_id])
        audio = audio_path(audio_dir, int(raw_id))
        if not audio.is_file():
            listing.skips.append(Skip(track_id, "audio file not found", str(audio)))
            continue
        listing.items.append(
            Item(
                track_id=track_id,
                row=row,
                audio=audio,
                name=audio.relative_to(audio_dir).as_posix(),
            )
        )
    if not listing.items and not listing.skips:
        raise SourceError(f"{tracks_path}: no track of subset {config.subset!r}")
    return listing


build = run_source(FmaConfig, list_items, "fma")
