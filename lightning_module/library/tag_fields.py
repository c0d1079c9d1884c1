"""Which tag fields players read, per file format, and how to read and write them (with mutagen).

Three tag families cover the formats music libraries hold:

========  ==========================  ======================================================
family    formats                     fields (genre / mood / BPM / key / style / grouping /
                                      ours)
========  ==========================  ======================================================
id3       mp3, wav (``id3 `` chunk),  ``TCON`` / ``TMOO`` (v2.4; ``TXXX:MOOD`` in v2.3, which
          aiff                        has no mood frame) / ``TBPM`` / ``TKEY`` /
                                      ``TXXX:STYLE`` / ``GRP1`` / ``TXXX:AUDIOTAGGER_<NAME>``
vorbis    flac, ogg vorbis, opus,     ``GENRE`` / ``MOOD`` / ``BPM`` / ``INITIALKEY`` /
          ogg flac                    ``STYLE`` / ``GROUPING`` / ``AUDIOTAGGER_<NAME>``
mp4       m4a, m4b, mp4               ``©gen`` / ``----:com.apple.iTunes:MOOD`` / ``tmpo``
                                      (integer) / ``----:com.apple.iTunes:initialkey`` /
                                      ``----:com.apple.iTunes:STYLE`` / ``©grp`` /
                                      ``----:com.apple.iTunes:AUDIOTAGGER_<NAME>``
========  ==========================  ======================================================

A field may hold several values (genres): ID3v2.4 frames hold several texts, Vorbis comments
repeat the key, MP4 items hold a list. ID3v2.3 has no multiple values; there they are joined
with :data:`V23_JOIN` into one text, as Picard does, which Navidrome and Jellyfin split again.

Our own fields carry one prefix, :data:`PREFIX` (``AUDIOTAGGER_``), so they are recognisable
and never collide with anyone else's. MP4 free-form atoms are named ``----:<mean>:<name>``
with a reverse-DNS ``mean``; we use iTunes' own (``com.apple.iTunes``) because it is the only
one TagLib (Navidrome, Jellyfin, Lidarr's readers) and Picard map to named properties, and the
prefix in the name keeps it ours.

Values cross this module in two JSON-able forms, so a journal can hold them:

* *exact* values, read from a file (:meth:`TagFile.read`), carry everything needed to put the
  field back byte for byte: the ID3 frame's encoding and text, the Vorbis comment entries with
  their key spelling and position, the MP4 items with their data type;
* *new* values, made from text (:meth:`TagFile.make`), in the form this file's tag wants (ID3v2.3
  gets UTF-16, v2.4 UTF-8; an MP4 ``tmpo`` an integer).

:func:`value_texts` reduces either form to the list of strings a player shows.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import mutagen
import mutagen.id3
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

#: The prefix of every field this project writes (ID3 TXXX descriptions, Vorbis comment keys,
#: MP4 free-form names): ``AUDIOTAGGER_ENERGY``, ``AUDIOTAGGER_MODEL``, ...
PREFIX = "AUDIOTAGGER_"
#: The ``mean`` (reverse-DNS namespace) of our MP4 free-form atoms (see the module docstring).
MP4_MEAN = "com.apple.iTunes"
#: Logical fields that live in the standard, player-visible fields.
STANDARD_FIELDS = ("genre", "mood", "bpm", "key", "style", "grouping")
#: How several values of one field are joined in an ID3v2.3 tag (which has no multiple values).
V23_JOIN = "; "
#: The free-form field recording which standard fields hold our values (JSON, logical name →
#: the texts we wrote), so a later run can tell its own values from the user's.
MARKER = "written"

#: The families and the mutagen file types (detected by content) that belong to them.
_ID3_TYPES = (MP3, WAVE, AIFF)
_VORBIS_TYPES = (FLAC, OggVorbis, OggOpus, OggFLAC)
_MP4_TYPES = (MP4,)
_OPTIONS = [*_ID3_TYPES, *_VORBIS_TYPES, *_MP4_TYPES]


class TagError(Exception):
    """A file whose tags cannot be read or written; ``str(err)`` is the reason (one line)."""


class NoTagSupport(TagError):
    """A format mutagen has no writable tag for here (it is reported and left alone)."""


def own_name(logical: str) -> str:
    """``energy`` → ``AUDIOTAGGER_ENERGY``: the name of one of our free-form fields."""
    return PREFIX + logical.upper()


def value_texts(value: Any) -> list[str]:
    """The strings a player shows for a value in either form (``[]`` for an absent field)."""
    if value is None:
        return []
    if isinstance(value, dict) and "frame" in value:  # ID3 frame
        return [str(t) for t in value.get("text", [])]
    if isinstance(value, dict) and "entries" in value:  # Vorbis, exact
        return [v for _, _, v in value["entries"]]
    if isinstance(value, dict) and "values" in value:  # Vorbis, new
        return list(value["values"])
    if isinstance(value, list):  # MP4 items
        return [_mp4_item_text(item) for item in value]
    raise TypeError(f"not a tag value: {value!r}")


def _mp4_item_text(item: dict[str, Any]) -> str:
    if "str" in item:
        return item["str"]
    if "int" in item:
        return str(item["int"])
    data = base64.b64decode(item["freeform"])
    return data.decode("utf-8", "replace")


def _plain(value: Any, where: str) -> Any:
    """An ID3 frame attribute as JSON (text frames only hold encodings, strings and lists)."""
    if isinstance(value, enum.IntEnum):
        return int(value)
    if isinstance(value, str | int):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise TagError(f"{where}: unsupported value type {type(value).__name__}")


@dataclass
class TagFile:
    """One file's tags, loaded for reading and writing.

    ``family`` is ``id3``, ``vorbis`` or ``mp4``; ``label`` names the format for reports
    (``mp3, ID3v2.4``); ``keys`` of the fields are the format's own (``TCON``, ``GENRE``,
    ``©gen``, ``TXXX:AUDIOTAGGER_ENERGY``, ``----:com.apple.iTunes:MOOD``).
    """

    path: str
    audio: mutagen.FileType
    family: str
    label: str
    id3_version: int = 4  # the ID3v2 version this file's tag is saved as (3 or 4)

    # -- field names -----------------------------------------------------------------------
    def key(self, logical: str) -> str:
        """The format's key of a logical field (``genre``, ``mood``, ``bpm`` or one of ours)."""
        if self.family == "id3":
            # ID3v2.3 has no mood frame: TXXX:MOOD is what taggers (Mp3tag, MediaMonkey) write
            # there, unless the file already holds a TMOO anyway.
            has_tmoo = self.audio.tags is not None and "TMOO" in self.audio.tags
            # Grouping: GRP1 (iTunes, Navidrome, Picard's "iTunes grouping"); TIT1 is read as
            # the work by Navidrome, so it is not used.
            standard = {
                "genre": "TCON",
                "mood": "TMOO" if self.id3_version == 4 or has_tmoo else "TXXX:MOOD",
                "bpm": "TBPM",
                "key": "TKEY",
                "style": "TXXX:STYLE",
                "grouping": "GRP1",
            }
            return standard.get(logical) or f"TXXX:{own_name(logical)}"
        if self.family == "vorbis":
            standard = {
                "genre": "GENRE",
                "mood": "MOOD",
                "bpm": "BPM",
                "key": "INITIALKEY",
                "style": "STYLE",
                "grouping": "GROUPING",
            }
            return standard.get(logical) or own_name(logical)
        standard = {
            "genre": "©gen",
            "mood": f"----:{MP4_MEAN}:MOOD",
            "bpm": "tmpo",
            "key": f"----:{MP4_MEAN}:initialkey",
            "style": f"----:{MP4_MEAN}:STYLE",
            "grouping": "©grp",
        }
        return standard.get(logical) or f"----:{MP4_MEAN}:{own_name(logical)}"

    def own_keys(self) -> list[str]:
        """Keys of our free-form fields present in the file."""
        tags = self.audio.tags
        if tags is None:
            return []
        if self.family == "id3":
            start = f"TXXX:{PREFIX}"
            keys = tags.keys()  # mutagen's dict-like tags: keys() is the documented way
            return sorted(k for k in keys if k.upper().startswith(start))
        if self.family == "vorbis":
            seen: dict[str, str] = {}
            for k, _ in tags:
                if k.upper().startswith(PREFIX):
                    seen.setdefault(k.upper(), k.upper())
            return sorted(seen)
        start = f"----:{MP4_MEAN}:{PREFIX}".upper()
        keys = tags.keys()
        return sorted(k for k in keys if k.upper().startswith(start))

    def logical_of(self, key: str) -> str:
        """``TXXX:AUDIOTAGGER_ENERGY`` → ``energy`` (the inverse of :meth:`key` for our fields)."""
        name = key.rsplit(":", 1)[-1]
        return name[len(PREFIX) :].lower()

    # -- values ----------------------------------------------------------------------------
    def read(self, key: str) -> Any:
        """The exact value of a field (JSON-able), or None when the file lacks it."""
        tags = self.audio.tags
        if tags is None:
            return None
        if self.family == "id3":
            frame = tags.get(key)
            if frame is None:
                return None
            value: dict[str, Any] = {"frame": frame.FrameID}
            for spec in (*frame._framespec, *frame._optionalspec):
                if hasattr(frame, spec.name):
                    value[spec.name] = _plain(getattr(frame, spec.name), f"{key}.{spec.name}")
            return value
        if self.family == "vorbis":
            low = key.lower()
            entries = [[i, k, v] for i, (k, v) in enumerate(tags) if k.lower() == low]
            return {"entries": entries} if entries else None
        items = tags.get(key)
        if items is None:
            return None
        out = []
        for item in items:
            if isinstance(item, MP4FreeForm):
                out.append(
                    {
                        "freeform": base64.b64encode(bytes(item)).decode("ascii"),
                        "dataformat": int(item.dataformat),
                        "version": int(item.version),
                    }
                )
            elif isinstance(item, bool):
                raise TagError(f"{key}: unsupported value type bool")
            elif isinstance(item, int):
                out.append({"int": int(item)})
            elif isinstance(item, str):
                out.append({"str": str(item)})
            else:
                raise TagError(f"{key}: unsupported value type {type(item).__name__}")
        return out

    def make(self, key: str, texts: list[str]) -> Any:
        """A new value of ``key`` holding ``texts``, in the form this file's tag wants."""
        if self.family == "id3":
            # ID3v2.3 has no UTF-8: mutagen would convert it to UTF-16 on save anyway, so say so
            # here and what is written is exactly what was planned.
            encoding = 3 if self.id3_version == 4 else 1
            if self.id3_version == 3 and len(texts) > 1:  # no multiple values in v2.3
                texts = [V23_JOIN.join(texts)]
            if key.startswith("TXXX:"):
                return {"frame": "TXXX", "encoding": encoding, "desc": key[5:], "text": texts}
            return {"frame": key, "encoding": encoding, "text": texts}
        if self.family == "vorbis":
            return {"values": list(texts)}
        if key == "tmpo":
            return [{"int": int(t)} for t in texts]
        if key.startswith("----:"):
            return [
                {
                    "freeform": base64.b64encode(t.encode("utf-8")).decode("ascii"),
                    "dataformat": int(AtomDataType.UTF8),
                    "version": 0,
                }
                for t in texts
            ]
        return [{"str": t} for t in texts]

    def write(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (either form) in memory (None deletes it); :meth:`save`
        writes it."""
        if self.audio.tags is None:
            if value is None:
                return
            self.audio.add_tags()
        tags = self.audio.tags
        if self.family == "id3":
            tags.delall(key)
            if value is not None:
                kwargs = {k: v for k, v in value.items() if k != "frame"}
                cls = mutagen.id3.Frames.get(value["frame"])
                if cls is None:
                    raise TagError(f"{key}: unknown ID3 frame {value['frame']}")
                tags.add(cls(**kwargs))
            return
        if self.family == "vorbis":
            self._write_vorbis(key, value)
            return
        if value is None:
            tags.pop(key, None)
            return
        items: list[Any] = []
        for item in value:
            if "freeform" in item:
                items.append(
                    MP4FreeForm(
                        base64.b64decode(item["freeform"]),
                        dataformat=AtomDataType(item["dataformat"]),
                        version=item["version"],
                    )
                )
            else:
                items.append(item["int"] if "int" in item else item["str"])
        tags[key] = items

    def _write_vorbis(self, key: str, value: Any) -> None:
        # VComment is a list of (key, value) pairs; mutagen's own __setitem__ deletes and
        # appends, which would move the field to the end and re-spell its key. We edit the list
        # in place so the comment keeps its order and spelling (and undo puts it back exactly).
        tags = self.audio.tags
        low = key.lower()
        positions = [i for i, (k, _) in enumerate(tags) if k.lower() == low]
        if value is not None and "values" in value and len(value["values"]) == len(positions):
            for i, text in zip(positions, value["values"], strict=True):
                list.__setitem__(tags, i, (list.__getitem__(tags, i)[0], text))
            return
        for i in reversed(positions):
            list.pop(tags, i)
        if value is None:
            return
        if "entries" in value:  # exact: back where they were
            for i, k, v in sorted(value["entries"]):
                list.insert(tags, i, (k, v))
            return
        at = positions[0] if positions else len(tags)
        for offset, text in enumerate(value["values"]):
            list.insert(tags, at + offset, (key, text))

    def save(
        self, path: str | os.PathLike, padding: Callable[[mutagen.PaddingInfo], int] | None = None
    ) -> None:
        """Write the tags in memory to ``path`` (a copy of the loaded file). ``padding``: a
        mutagen padding function (bytes of padding to leave; None: mutagen's default)."""
        try:
            if isinstance(self.audio, MP3):
                # v1=1: an existing ID3v1 tag is refreshed from the v2 tag (mutagen's default; a
                # file without one does not get one); the v2 tag keeps its own version.
                self.audio.tags.save(str(path), v1=1, v2_version=self.id3_version, padding=padding)
            elif self.family == "id3":  # the ID3 chunk of a WAVE / AIFF file
                self.audio.tags.save(str(path), v2_version=self.id3_version, padding=padding)
            else:
                self.audio.save(str(path), padding=padding)
        except Exception as err:  # mutagen.MutagenError, OSError, struct errors
            raise TagError(f"cannot write tags ({_one_line(err)})") from err

    def remove_container(self, path: str | os.PathLike) -> None:
        """Remove the (empty) tag container from ``path``: the ID3v2 tag of an MP3, the ID3
        chunk of a WAVE or AIFF file. Undo does this where the original had none, so the file
        comes back byte-identical. Vorbis comments are part of the stream and an MP4 keeps its
        ``udta`` box: they have no container to remove (:class:`TagError`)."""
        if self.family != "id3":
            raise TagError(f"a {self.label} file has no tag container to remove")
        try:
            if isinstance(self.audio, MP3):
                mutagen.id3.delete(str(path), delete_v1=False, delete_v2=True)
            else:
                type(self.audio)(str(path)).delete()
        except Exception as err:  # mutagen.MutagenError, OSError
            raise TagError(f"cannot remove the tag ({_one_line(err)})") from err

    # -- whole tag -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, str]:
        """Every field of the file as key → digest of its exact content, to check that a write
        changed only what it meant to (and that undo put everything back)."""
        out: dict[str, str] = {}
        tags = self.audio.tags
        if tags is not None:
            if self.family == "id3":
                for key, frame in tags.items():
                    out[key] = _digest([frame._writeData()])
                for i, raw in enumerate(getattr(tags, "unknown_frames", [])):
                    out[f"<unknown frame {i}>"] = _digest([raw])
            elif self.family == "vorbis":
                # per key (lower case: Vorbis keys are case-insensitive) every entry with its
                # spelling, in order; "<order>" is the order of all entries
                out["<vendor>"] = _digest([tags.vendor.encode("utf-8")])
                entries: dict[str, list[bytes]] = {}
                for k, v in tags:
                    entries.setdefault(k.lower(), []).extend([k.encode(), v.encode("utf-8")])
                out.update({k: _digest(parts) for k, parts in entries.items()})
                out["<order>"] = _digest([k.lower().encode() for k, _ in tags])
            else:
                for key, items in tags.items():
                    parts = []
                    for item in items:
                        fmt = getattr(item, "dataformat", getattr(item, "imageformat", None))
                        parts.append(repr((type(item).__name__, fmt)).encode("utf-8"))
                        if isinstance(item, bytes):  # free-form data, covers
                            parts.append(bytes(item))
                        else:
                            parts.append(repr(item).encode("utf-8"))
                    out[key] = _digest(parts)
        for i, picture in enumerate(getattr(self.audio, "pictures", []) or []):  # FLAC blocks
            out[f"<picture {i}>"] = _digest([picture.write()])
        return out


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:32]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def open_tags(path: str | os.PathLike) -> TagFile:
    """Load the tags of ``path`` (format found from the content, not the name).

    ID3 tags are read as stored (no translation to v2.4 in memory, ID3v1 fields merged as
    mutagen does) and saved in their own version, so frames we do not touch stay as they are;
    an old ID3v2.2 tag is read translated and saved as v2.4 (mutagen cannot write v2.2).

    Raises:
        NoTagSupport: a format without (writable) tag support here.
        TagError: the file cannot be parsed.
    """
    path = str(path)
    try:
        audio = mutagen.File(path, options=_OPTIONS)
    except Exception as err:  # mutagen.MutagenError and the parsers' own errors
        raise TagError(f"cannot read tags ({_one_line(err)})") from err
    if audio is None:
        raise NoTagSupport("format without tag support")
    kind = type(audio).__name__
    try:
        if isinstance(audio, _ID3_TYPES):
            audio = type(audio)(path, translate=False)
            version = audio.tags.version[1] if audio.tags is not None else 4
            if version < 3:
                audio = type(audio)(path)  # translated to v2.4
                version = 4
            ext = {"MP3": "mp3", "WAVE": "wav", "AIFF": "aiff"}[kind]
            where = " chunk" if kind != "MP3" else ""
            label = f"{ext}, ID3v2.{version}{where}"
            if audio.tags is None:
                label = f"{ext}, no tag yet: ID3v2.4{where}"
            return TagFile(path, audio, "id3", label, id3_version=version)
    except Exception as err:
        raise TagError(f"cannot read tags ({_one_line(err)})") from err
    if isinstance(audio, _VORBIS_TYPES):
        label = {
            "FLAC": "flac, Vorbis comments",
            "OggVorbis": "ogg vorbis, Vorbis comments",
            "OggOpus": "opus, Vorbis comments",
            "OggFLAC": "ogg flac, Vorbis comments",
        }[kind]
        return TagFile(path, audio, "vorbis", label)
    return TagFile(path, audio, "mp4", "m4a, MP4 atoms")
