"""What a source lists: its items (:class:`Item`), what it found and already rejected
(:class:`SourceListing`), the options every source accepts (:class:`SourceConfig`), and the audio
files under a folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datamodules.builds import Skip, SourceError
from datamodules.manifest import GROUND_TRUTH
from datamodules.sources.splits import SplitConfig


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
class SourceListing:
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


def iter_audio_files(root: Path, extensions: Iterable[str]) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted, hidden files ignored)."""
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")
    )
