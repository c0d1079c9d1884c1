"""Generated audio files of every format the tag writer handles, and an independent view of
their tags (plain mutagen, default loading) to compare against."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import mutagen
import numpy as np
import soundfile as sf
from mutagen.id3 import APIC, ID3, TCON, TIT2, TPE1, TYER

#: name → how it is made; "mp3_v23"/"mp3_v24" carry a user tag (title, artist, genre "Jazz",
#: a cover picture; v2.3 also a year).
FORMATS = ("mp3", "mp3_v23", "mp3_v24", "flac", "ogg", "opus", "m4a", "wav")
USER_GENRE = "Jazz"
#: How many bytes a file made here (by :func:`make_file`) is longer after write + undo than
#: before, where it cannot come back byte-identical (docs/tag_your_library.md, "Undo"):
#: mutagen always writes a FLAC PADDING block and an MP4 ``free`` atom after the tags, empty at
#: least, and these files had none. Every other kind comes back byte-identical.
UNDO_GROWTH = {"flac": 4, "m4a": 8}


def tone(seconds: float = 1.5, sr: int = 44100, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_m4a(path: Path, x: np.ndarray, sr: int = 44100) -> Path:
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def make_file(folder: Path, kind: str, seed: int = 0, stem: str | None = None) -> Path:
    """One file of ``kind`` (see :data:`FORMATS`) in ``folder``."""
    x = tone(seed=seed, freq=330.0 + 40 * seed)
    stem = stem or kind
    if kind.startswith("mp3"):
        path = folder / f"{stem}.mp3"
        sf.write(path, x, 44100, format="MP3")
        if kind != "mp3":
            version = 3 if kind == "mp3_v23" else 4
            tag = ID3()
            tag.add(TIT2(encoding=1, text=["A title"]))
            tag.add(TPE1(encoding=1, text=["An artist"]))
            tag.add(TCON(encoding=1, text=[USER_GENRE]))
            tag.add(APIC(encoding=0, mime="image/png", type=3, desc="cover", data=b"\x89PNG" * 900))
            if version == 3:
                tag.add(TYER(encoding=0, text=["1999"]))
            tag.save(path, v2_version=version)
        return path
    if kind == "flac":
        path = folder / f"{stem}.flac"
        sf.write(path, x, 44100)
    elif kind == "ogg":
        path = folder / f"{stem}.ogg"
        sf.write(path, x, 44100, format="OGG", subtype="VORBIS")
    elif kind == "opus":
        path = folder / f"{stem}.opus"
        sf.write(path, x, 48000, format="OGG", subtype="OPUS")
    elif kind == "m4a":
        path = write_m4a(folder / f"{stem}.m4a", x)
    elif kind == "wav":
        path = folder / f"{stem}.wav"
        sf.write(path, x, 44100, subtype="PCM_16")
    else:
        raise ValueError(kind)
    return path


def mutagen_view(path: Path) -> list[tuple[str, bytes]]:
    """Every tag field as plain mutagen reads it (default options), with its exact bytes: what
    "the tags are the same, byte for byte" is checked against."""
    audio = mutagen.File(path)
    out: list[tuple[str, bytes]] = []
    tags = audio.tags if audio is not None else None
    if tags is None:
        return out
    if isinstance(tags, ID3) or hasattr(tags, "getall"):
        for key in sorted(tags.keys()):
            out.append((key, tags[key]._writeData()))
    elif isinstance(tags, list):  # Vorbis comments: entries in order, with their spelling
        out = [(k, v.encode()) for k, v in tags]
        out.append(("<vendor>", tags.vendor.encode()))
    else:  # MP4
        for key in sorted(tags.keys()):
            for item in tags[key]:
                fmt = getattr(item, "dataformat", None)
                data = bytes(item) if isinstance(item, bytes) else repr(item).encode()
                out.append((key, repr(fmt).encode() + data))
    return out


def read_field(path: Path, name: str) -> list[str]:
    """A field's texts as a player library would read it (plain mutagen): ``name`` is the
    format's own key."""
    audio = mutagen.File(path)
    tags = audio.tags
    if tags is None:
        return []
    if hasattr(tags, "getall"):  # ID3
        frame = tags.get(name)
        return [str(t) for t in frame.text] if frame is not None else []
    if isinstance(tags, list):
        return list(tags.get(name, []))
    values = tags.get(name, [])
    return [bytes(v).decode() if isinstance(v, bytes) else str(v) for v in values]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_padding(path: Path, size: int = 1024) -> Path:
    """Give a file's tag ``size`` bytes of padding (a FLAC PADDING block, an MP4 ``free`` atom),
    as ffmpeg and most taggers leave it: libsndfile and PyAV write none."""
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    audio.save(padding=lambda info: size)
    return path
