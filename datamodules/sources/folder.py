"""``folder``: one subfolder per label, GTZAN-style ``<root>/<label>/*.{wav,mp3,au,ogg,...}``.

The subfolder name is the label of the column ``label_column`` (``genre`` or ``mood``). Track ids
are ``<id_prefix><file stem>`` (the relative path when stems repeat). Audio stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datamodules.audio import AUDIO_EXTENSIONS
from datamodules.sources.base import (
    Item,
    SourceConfig,
    SourceError,
    SourceListing,
    iter_audio_files,
    run_source,
)


@dataclass
class FolderConfig(SourceConfig):
    """Options of the folder source (plus :class:`SourceConfig`'s).

    Attributes:
        root: the folder holding one subfolder per label.
        label_column: manifest column the subfolder name goes to (``genre`` or ``mood``).
        extensions: audio file extensions to pick up.
        id_prefix: prefix of every track id (default ``<name>:``).
    """

    root: str = ""
    label_column: str = "genre"
    extensions: list[str] = field(default_factory=lambda: list(AUDIO_EXTENSIONS))
    id_prefix: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.root:
            raise SourceError("root is required (the folder with one subfolder per label)")
        if self.label_column not in ("genre", "mood"):
            raise SourceError(f"label_column must be genre or mood, got {self.label_column!r}")


def list_items(config: FolderConfig) -> SourceListing:
    """One item per audio file under ``root``; its first subfolder is its label."""
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise SourceError(f"{root}: folder not found")
    files = iter_audio_files(root, config.extensions)
    if not files:
        raise SourceError(f"{root}: no audio files ({', '.join(config.extensions)})")
    prefix = f"{config.name or 'folder'}:" if config.id_prefix is None else config.id_prefix
    relative = [f.relative_to(root) for f in files]
    stems = [r.stem for r in relative]
    unique = len(set(stems)) == len(stems)
    listing = SourceListing()
    for path, rel in zip(files, relative, strict=True):
        label = rel.parts[0] if len(rel.parts) > 1 else None
        key = rel.stem if unique else rel.with_suffix("").as_posix()
        listing.items.append(
            Item(
                track_id=f"{prefix}{key}",
                row={config.label_column: label},
                audio=path,
                name=rel.as_posix(),
            )
        )
    return listing


build = run_source(FolderConfig, list_items, "folder")
