"""Musical keys as values: parsing, Camelot codes, MIREX relations."""

import numpy as np
import pytest

from datamodules.analysis.key import (
    KEY_NAMES,
    camelot,
    key_index,
    mirex_scores,
    parse_key,
    relation,
    shift_key,
    short_name,
    tonic_and_mode,
)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("A minor", "A minor"),
        ("Am", "A minor"),
        ("a:min", "A minor"),
        ("D# minor", "Eb minor"),
        ("Eb", "Eb major"),
        ("F major", "F major"),
        ("Cb major", "B major"),
        ("F#m", "F# minor"),
    ],
)
def test_parse_key_reads_what_tables_and_tags_write(text: str, name: str) -> None:
    assert KEY_NAMES[parse_key(text)] == name


def test_parse_key_refuses_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="not a musical key: 'H minor'"):
        parse_key("H minor")


@pytest.mark.parametrize(
    ("key", "code", "short"),
    [
        ("A minor", "8A", "Am"),
        ("C major", "8B", "C"),
        ("B major", "1B", "B"),
        ("C minor", "5A", "Cm"),
        ("E minor", "9A", "Em"),
        ("F# major", "2B", "F#"),
        ("Eb minor", "2A", "Ebm"),
    ],
)
def test_camelot_and_short_names(key: str, code: str, short: str) -> None:
    assert camelot(parse_key(key)) == code
    assert short_name(parse_key(key)) == short


def test_mirex_relations_and_weighted_score() -> None:
    c_major = key_index("C", "major")
    assert relation(c_major, c_major) == "correct"
    assert relation(key_index("G", "major"), c_major) == "fifth"
    assert relation(key_index("F", "major"), c_major) == "fifth"
    assert relation(key_index("A", "minor"), c_major) == "relative"
    assert relation(c_major, key_index("A", "minor")) == "relative"
    assert relation(key_index("C", "minor"), c_major) == "parallel"
    assert relation(key_index("D", "major"), c_major) == "other"
    scores = mirex_scores(
        np.array([c_major, key_index("G", "major"), key_index("A", "minor"), 1]),
        np.array([c_major] * 4),
    )
    assert scores["weighted"] == pytest.approx((1.0 + 0.5 + 0.3 + 0.0) / 4)
    assert scores["n"] == 4 and scores["other"] == 0.25


def test_shift_key_transposes_and_keeps_the_mode() -> None:
    assert tonic_and_mode(shift_key(key_index("A", "minor"), 2)) == ("B", "minor")
    assert tonic_and_mode(shift_key(key_index("C", "major"), -1)) == ("B", "major")
