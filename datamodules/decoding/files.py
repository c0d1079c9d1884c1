"""What a file is before it is decoded: its name's kind (audio, sidecar, hidden), the checks every
decoder runs first (exists, regular, not empty, not huge), the header record and the one error
type. One-line messages name the file and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Files larger than this are refused before decoding (a 1 h 48 kHz stereo float wav is ~1.4 GB).
MAX_FILE_BYTES = 2 * 1024**3

AUDIO_EXTENSIONS: tuple[str, ...] = (
    # libsndfile
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".mp3",
    ".au",
    ".aiff",
    ".aif",
    ".opus",
    ".caf",
    ".w64",
    # PyAV (FFmpeg); ALAC lives in .m4a (or .caf)
    ".m4a",
    ".m4b",
    ".m4p",  # usually DRM-protected: listed so the user is told so instead of it being ignored
    ".mp4",
    ".mov",
    ".aac",
    ".alac",
    ".wma",
    ".asf",
    ".webm",
    ".mka",
    ".mkv",
    ".ac3",
    ".eac3",
    ".mp2",
    ".wv",
    ".ape",
)

#: Files that travel with music (covers, cue sheets, playlists, rip logs): not audio, not errors.
SIDECAR_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".cue",
    ".nfo",
    ".lrc",
    ".m3u",
    ".m3u8",
    ".txt",
    ".log",
    ".pdf",
    ".sfv",
    ".md5",
)


class AudioError(ValueError):
    """Audio that cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header says. ``frames`` may be an estimate (mp3, and PyAV containers, where it
    comes from the stream's or the container's declared duration).

    ``backend`` is the decoder that read the header: ``"soundfile"`` or ``"pyav"``; ``codec`` is
    the codec (PyAV) or libsndfile subtype (soundfile) name.
    """

    sample_rate: int
    channels: int
    frames: int
    backend: str = "soundfile"
    codec: str = ""

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def classify_path(path: str | os.PathLike) -> Literal["audio", "sidecar", "hidden", "unknown"]:
    """What a file in a music folder is, by name only: ``"hidden"`` (name starts with ".", e.g.
    macOS ``._song.m4a`` resource forks), ``"audio"`` (an :data:`AUDIO_EXTENSIONS` suffix),
    ``"sidecar"`` (covers, cue sheets, playlists, logs: :data:`SIDECAR_EXTENSIONS`) or
    ``"unknown"``. Folder runs decode only ``"audio"`` and count the rest as not audio."""
    name = Path(path).name
    if name.startswith("."):
        return "hidden"
    suffix = Path(name).suffix.lower()
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    if suffix in SIDECAR_EXTENSIONS:
        return "sidecar"
    return "unknown"


def check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise AudioError(
            f"{path}: file too large ({size / 1e9:.1f} GB > {MAX_FILE_BYTES / 1e9:.1f} GB)"
        )
    return path


def one_line(err: Exception) -> str:
    # FFmpeg errors carry the url in str(err); strerror is just the reason.
    text = getattr(err, "strerror", None) or str(err)
    text = " ".join(str(text).split()) or type(err).__name__
    # libsndfile reports an unrecognised mp3 as a missing file; we already know the file exists.
    if "is not a regular file (possibly a pipe?)" in text:
        return "format not recognised or file corrupt"
    return text
