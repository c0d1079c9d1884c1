"""Our fields in beets' database types and in the files beets writes.

* :data:`ITEM_TYPES`: the flexible attributes' types, so queries compare numbers
  (``audiotagger_energy:0.8..`` is a range, not a substring) and ``beet ls`` formats them.
* :data:`MOOD_FIELD`: a ``mood`` media field (beets has none; ID3 ``TMOO`` and ``TXXX:MOOD``,
  Vorbis ``MOOD``, MP4 ``----:com.apple.iTunes:MOOD``, the fields of
  :mod:`lightning_module.library.tag_fields`), so a user's mood is read on import and ours is
  written.
* :func:`own_media_fields`: a MediaFile field per flexible attribute, named as
  ``write_tags`` names ours in files (``TXXX:AUDIOTAGGER_ENERGY``, ``AUDIOTAGGER_ENERGY``,
  ``----:com.apple.iTunes:AUDIOTAGGER_ENERGY``). They are not beets media fields (an import
  would otherwise add a dozen empty attributes to every item); :func:`add_own_tags`, on beets'
  ``write`` event, puts an item's values into what beets writes.
"""

from __future__ import annotations

from typing import Any

from beets.dbcore import types
from mediafile import (
    ASFStorageStyle,
    MediaField,
    MP3DescStorageStyle,
    MP3StorageStyle,
    MP4StorageStyle,
    StorageStyle,
)

from datamodules.schema import FEATURE_UNITS, FEATURES
from lightning_module.beets_plugin.fields import MODEL_FIELD, PREFIX

#: Our float attributes (logical names) and the decimals a file gets (as :func:`feature_value`).
FLOAT_FIELDS: dict[str, int] = {
    **{name: 1 if FEATURE_UNITS.get(name) else 3 for name in FEATURES},
    "genre_probability": 3,
    "mood_probability": 3,
    "key_confidence": 3,
}
#: Our text attributes (logical names).
TEXT_FIELDS = ("genre", "mood", "genre_tags", "key", "camelot", "model")

#: beets' type of each flexible attribute (floats may be absent: NULL, never 0.0; shown with
#: the decimals files get).
ITEM_TYPES: dict[str, types.Type] = {
    **{PREFIX + name: types.NullFloat(places) for name, places in FLOAT_FIELDS.items()},
    **{PREFIX + name: types.STRING for name in TEXT_FIELDS},
}


def _styles(tag: str, float_places: int = 2) -> list[StorageStyle]:
    """ID3 TXXX, MP4 free-form, Vorbis/APE comment and ASF styles of one text tag."""
    return [
        MP3DescStorageStyle(tag, float_places=float_places),
        MP4StorageStyle(f"----:com.apple.iTunes:{tag}", float_places=float_places),
        StorageStyle(tag, float_places=float_places),
        ASFStorageStyle(tag, float_places=float_places),
    ]


#: beets' ``mood`` media field (read first from TMOO; written to both ID3 frames, since
#: ID3v2.3, beets' ``id3v23: yes``, drops TMOO).
MOOD_FIELD = MediaField(
    MP3StorageStyle("TMOO"),
    MP3DescStorageStyle("MOOD"),
    MP4StorageStyle("----:com.apple.iTunes:MOOD"),
    StorageStyle("MOOD"),
    ASFStorageStyle("WM/Mood"),
)


def own_media_fields() -> dict[str, MediaField]:
    """``audiotagger_<name>`` -> its MediaField (file tag ``AUDIOTAGGER_<NAME>``)."""
    fields = {}
    for name, places in FLOAT_FIELDS.items():
        tag = (PREFIX + name).upper()
        fields[PREFIX + name] = MediaField(*_styles(tag, places), out_type=float)
    for name in TEXT_FIELDS:
        fields[PREFIX + name] = MediaField(*_styles((PREFIX + name).upper()))
    return fields


def register_media_fields(plugin: Any) -> None:
    """Add ``mood`` as a beets media field and ours as MediaFile fields (once per process)."""
    from mediafile import MediaFile

    if "mood" not in MediaFile.fields():
        plugin.add_media_field("mood", MOOD_FIELD)
    for name, descriptor in own_media_fields().items():
        if not hasattr(MediaFile, name):
            MediaFile.add_field(name, descriptor)


def add_own_tags(item: Any, path: Any = None, tags: dict[str, Any] | None = None) -> None:
    """beets' ``write`` event: add the item's ``audiotagger_*`` values to the ``tags`` beets
    writes. An item we tagged also gets the fields the model no longer gives removed (None);
    an item we never tagged is left as it is (its file may hold another tool's values)."""
    if tags is None or MODEL_FIELD not in item:
        return
    for name in ITEM_TYPES:
        tags[name] = item.get(name) if name in item else None
