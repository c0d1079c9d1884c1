"""Musical keys as plain values: the 24 classes of the key head, parsing what tables write,
Camelot codes for DJs, and the MIREX score of an estimate (no torch, no pandas).

A key is an index ``mode * 12 + tonic``: ``tonic`` the pitch class (0 = C ... 11 = B), ``mode``
0 major, 1 minor. :data:`KEY_NAMES` lists them in that order (``C major`` ... ``B minor``).
"""

from __future__ import annotations

import re

import numpy as np

#: Tonic spellings (the ones DJ software and ID3 ``TKEY`` readers show): sharps for C#/F#,
#: flats for Eb/Ab/Bb.
TONICS: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES: tuple[str, ...] = ("major", "minor")
#: The key head's classes, index ``mode * 12 + tonic``.
KEY_NAMES: tuple[str, ...] = tuple(f"{t} {m}" for m in MODES for t in TONICS)

_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_TEXT = re.compile(
    r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*[:\s]?\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE
)

#: MIREX key-evaluation credit of each relation of an estimate to the truth.
MIREX_CREDIT: dict[str, float] = {
    "correct": 1.0,
    "fifth": 0.5,
    "relative": 0.3,
    "parallel": 0.2,
    "other": 0.0,
}


def key_index(tonic: str, mode: str) -> int:
    """The class index of ``tonic`` (``C``, ``D#``, ``Eb``, ...) in ``mode`` (``major``/``minor``).

    Raises:
        ValueError: an unknown tonic or mode.
    """
    return parse_key(f"{tonic} {mode}")


def parse_key(text: str) -> int:
    """The class index of a key as tables and tags write it: ``A minor``, ``Am``, ``a:min``,
    ``D# minor``, ``Eb``, ``F major`` (no mode: major).

    Raises:
        ValueError: text that is not a key (its one-line message quotes it).
    """
    match = _KEY_TEXT.match(str(text))
    if not match:
        raise ValueError(f"not a musical key: {text!r}")
    letter, accidental, mode = match.groups()
    pitch = _PITCH[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)
    # "m" alone means minor (Am); "M"/"maj" or nothing means major.
    minor = bool(mode) and mode.lower() in ("minor", "min", "m") and mode != "M"
    return int(minor) * 12 + pitch % 12


def tonic_and_mode(index: int) -> tuple[str, str]:
    """``(tonic, mode)`` of a class index, e.g. ``("A", "minor")``."""
    return TONICS[index % 12], MODES[index // 12]


def camelot(index: int) -> str:
    """The Camelot wheel code of a key (``8A`` = A minor, ``8B`` = C major): neighbouring numbers
    are a fifth apart, A/B of one number are relative keys, so mixes move by one step."""
    tonic, minor = index % 12, index >= 12
    major_tonic = (tonic + 3) % 12 if minor else tonic  # a minor key sits with its relative major
    return f"{(7 * major_tonic + 7) % 12 + 1}{'A' if minor else 'B'}"


def short_name(index: int) -> str:
    """The notation of ID3 ``TKEY`` and most players: ``Am``, ``C#``, ``Ebm``, ``F``."""
    tonic, mode = tonic_and_mode(index)
    return tonic + ("m" if mode == "minor" else "")


def relation(estimate: int, truth: int) -> str:
    """How ``estimate`` relates to ``truth`` in the MIREX key evaluation: ``correct``, ``fifth``
    (same mode, tonic a fifth above or below), ``relative`` (relative major/minor), ``parallel``
    (same tonic, other mode) or ``other``."""
    e_tonic, e_minor = estimate % 12, estimate >= 12
    t_tonic, t_minor = truth % 12, truth >= 12
    if estimate == truth:
        return "correct"
    if e_minor == t_minor and (e_tonic - t_tonic) % 12 in (5, 7):
        return "fifth"
    if e_minor != t_minor:
        if not t_minor and e_tonic == (t_tonic + 9) % 12:  # C major -> A minor
            return "relative"
        if t_minor and e_tonic == (t_tonic + 3) % 12:  # A minor -> C major
            return "relative"
        if e_tonic == t_tonic:
            return "parallel"
    return "other"


def mirex_scores(estimates: np.ndarray, truths: np.ndarray) -> dict[str, float]:
    """The MIREX weighted score and the share of each relation, over paired key indices.

    Shapes: ``estimates``, ``truths`` (n,) int. Returns ``{"weighted", "correct", "fifth",
    "relative", "parallel", "other", "n"}`` (shares in 0-1; empty input: ``n`` 0 only).
    """
    estimates, truths = np.asarray(estimates, int), np.asarray(truths, int)
    if estimates.size == 0:
        return {"n": 0}
    relations = [relation(int(e), int(t)) for e, t in zip(estimates, truths, strict=True)]
    shares = {name: relations.count(name) / len(relations) for name in MIREX_CREDIT}
    weighted = sum(MIREX_CREDIT[name] * share for name, share in shares.items())
    return {"weighted": weighted, **shares, "n": len(relations)}


def shift_key(index: int, semitones: int) -> int:
    """The key of audio pitch-shifted by ``semitones`` (the mode stays)."""
    return (index // 12) * 12 + (index % 12 + semitones) % 12
