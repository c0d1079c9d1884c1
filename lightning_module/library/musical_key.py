"""The musical key of a prediction, checked and spelled the way players and DJ tools read it.

A prediction (or a results row) may carry four optional fields: ``key`` (the tonic, one of
:data:`TONICS`), ``mode`` (``major``/``minor``), ``key_confidence`` (0-1) and ``camelot``
(``8A``). :func:`key_of` turns them into a :class:`MusicalKey` (or None when the prediction has
no key), refusing anything malformed with a one-line reason.

Two notations go into the files' key field (ID3 ``TKEY``, Vorbis ``INITIALKEY``, MP4
``----:com.apple.iTunes:initialkey``):

* ``standard`` (default): the ID3v2.4 ``TKEY`` notation, at most three characters, the tonic
  with ``b``/``#`` and ``m`` for minor (``Am``, ``C#``, ``Ebm``), which Mixxx, rekordbox,
  Serato, Traktor, beets and Picard read;
* ``camelot``: the Camelot wheel code (``8A`` = A minor, ``8B`` = C major), which harmonic-mixing
  users often prefer: neighbours on the wheel (±1, or A↔B) mix without clashing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The tonics, spelled as the model outputs them (sharps for C#/F#, flats for the rest).
TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: Enharmonic spellings accepted on input, and the spelling they become.
ENHARMONIC = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb"}
MODES = ("major", "minor")
NOTATIONS = ("standard", "camelot")
#: Camelot numbers (1-12) of the minor keys (``A``); a major key has the number of its
#: relative minor, three semitones below it (``B``).
_CAMELOT_MINOR = {
    "Ab": 1, "Eb": 2, "Bb": 3, "F": 4, "C": 5, "G": 6,
    "D": 7, "A": 8, "E": 9, "B": 10, "F#": 11, "C#": 12,
}  # fmt: skip
#: The prediction fields a key is made of.
KEY_FIELDS = ("key", "mode", "key_confidence", "camelot")


@dataclass(frozen=True)
class MusicalKey:
    """A key: ``tonic`` (one of :data:`TONICS`), ``mode`` (``major``/``minor``), the model's
    ``confidence`` (0-1, None when the record had none)."""

    tonic: str
    mode: str
    confidence: float | None = None

    @property
    def standard(self) -> str:
        """``Am``, ``C#``, ``Ebm``: the ID3 ``TKEY`` notation."""
        return self.tonic + ("m" if self.mode == "minor" else "")

    @property
    def camelot(self) -> str:
        """``8A`` (A minor), ``8B`` (C major)."""
        if self.mode == "minor":
            return f"{_CAMELOT_MINOR[self.tonic]}A"
        relative_minor = TONICS[(TONICS.index(self.tonic) - 3) % 12]
        return f"{_CAMELOT_MINOR[relative_minor]}B"

    def notation(self, notation: str) -> str:
        """The key as written into the files' key field (see the module docstring)."""
        if notation not in NOTATIONS:
            raise ValueError(
                f"key notation must be one of {', '.join(NOTATIONS)}, not {notation!r}"
            )
        return self.camelot if notation == "camelot" else self.standard


def _tonic(text: str) -> str:
    spelled = text.strip()
    spelled = spelled[:1].upper() + spelled[1:].lower() if spelled else spelled
    spelled = ENHARMONIC.get(spelled, spelled)
    if spelled not in TONICS:
        raise ValueError(f"field 'key': {text!r} is not a tonic (one of {', '.join(TONICS)})")
    return spelled


def key_of(record: Mapping[str, Any]) -> MusicalKey | None:
    """The key of a prediction record (:data:`KEY_FIELDS`; empty CSV cells count as absent),
    or None when it has none.

    Raises:
        ValueError: a key without a mode, an unknown tonic or mode, a confidence outside 0-1,
            or a ``camelot`` that is not the code of ``key`` and ``mode`` (one line, naming the
            field).
    """

    def given(name: str) -> Any:
        value = record.get(name)
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    tonic, mode = given("key"), given("mode")
    if tonic is None:
        if mode is not None or given("camelot") is not None:
            raise ValueError("field 'key' is missing, though 'mode' or 'camelot' is given")
        return None
    if mode is None:
        raise ValueError(f"field 'mode' is missing for key {tonic!r} (major or minor)")
    mode_text = str(mode).strip().lower()
    if mode_text not in MODES:
        raise ValueError(f"field 'mode': {mode!r} is not 'major' or 'minor'")
    confidence = given("key_confidence")
    if confidence is not None:
        try:
            confidence = float(confidence)
        except (TypeError, ValueError) as err:
            raise ValueError(f"field 'key_confidence': {confidence!r} is not a number") from err
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            raise ValueError(f"field 'key_confidence': {confidence} is not in [0, 1]")
    key = MusicalKey(_tonic(str(tonic)), mode_text, confidence)
    camelot = given("camelot")
    if camelot is not None and str(camelot).strip().upper() != key.camelot:
        raise ValueError(
            f"field 'camelot': {camelot!r} is not the code of {key.standard} ({key.camelot})"
        )
    return key
