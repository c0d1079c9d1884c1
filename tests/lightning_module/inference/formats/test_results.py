"""Results files round-trip: the writer's CSV rows and JSON lines read back into the same
predictions (to the writer's rounding), for a model with genre tags, tags, tempo and a feature it
was not trained on."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from lightning_module.inference.formats.csv_rows import GENRE_TAG_TOP, parse_genre_tags
from lightning_module.inference.formats.results import (
    PredictionWriter,
    RowFormat,
    format_of,
    read_predictions,
)
from lightning_module.inference.tagger import ClipPrediction
from lightning_module.model.spec import TaggerSpec

SPEC = TaggerSpec(
    genre_names=("rock", "jazz", "pop"),
    mood_names=("happy", "sad"),
    tag_names=("guitar", "piano", "female vocals"),
    genre_tag_names=("Pop/Rock", "Jazz", "Folk, World, & Country", "Electronic"),
    feature_names=("energy", "valence", "tempo", "liveness"),
    feature_mean=(0.5, 0.5, 120.0, 0.2),
    feature_std=(0.2, 0.2, 30.0, 0.1),
    feature_sources=({"human": 90}, {"teacher:vibenet": 540}, {"human": 90}, {}),
    tempo_bins=64,
)


def _prediction(path: str, shift: float) -> ClipPrediction:
    trained = [n for n in SPEC.feature_names if n in SPEC.trained_features]
    assert "liveness" not in trained  # the untrained feature is never predicted
    values = {"energy": 0.712345678, "valence": 0.40004321, "tempo": 121.63219876}
    return ClipPrediction(
        path=path,
        duration=29.98765 + shift,
        windows=19,
        genre=[("jazz", 0.61237 - shift), ("rock", 0.29871), ("pop", 0.08892 + shift)],
        mood=[("sad", 0.70011), ("happy", 0.29989)],
        features={k: values[k] + shift for k in trained},
        tags=[("piano", 0.91234567), ("female vocals", 0.5555555), ("guitar", 0.0123456)],
        start=12.34567,
        feature_basis={k: SPEC.feature_basis(k) for k in trained},
        genre_tags={
            "Jazz": 0.876543,
            "Folk, World, & Country": 0.6543,
            "Pop/Rock": 0.41234,
            "Electronic": 0.0321,
        },
    )


PREDICTIONS = [_prediction('música/a, "b".flac', 0.0), _prediction("/abs/c.wav", 0.01)]


def _rounded(p: ClipPrediction, fmt: str, top: int | None = None) -> ClipPrediction:
    """What a row of ``fmt`` keeps of ``p``."""

    def ranked(pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
        return [(n, round(v, 4)) for n, v in pairs[: None if fmt == "csv" else top]]

    common = dict(
        genre=ranked(p.genre),
        mood=ranked(p.mood),
        tags=ranked(p.tags),
        features={k: round(v, 4) for k, v in p.features.items()},
    )
    if fmt == "csv":  # seconds to 3 decimals, the top genre tags to 2, no feature basis
        tags = list(p.genre_tags.items())[:GENRE_TAG_TOP]
        return dataclasses.replace(
            p,
            **common,
            start=round(p.start, 3),
            duration=round(p.duration, 3),
            feature_basis={},
            genre_tags={k: round(v, 2) for k, v in tags},
        )
    return dataclasses.replace(
        p, **common, genre_tags={k: round(v, 4) for k, v in p.genre_tags.items()}
    )


@pytest.mark.parametrize(("fmt", "top"), [("csv", None), ("jsonl", None), ("jsonl", 2)])
def test_written_predictions_read_back(tmp_path: Path, fmt: str, top: int | None) -> None:
    out = tmp_path / f"results.{fmt}"
    assert format_of(out) == fmt
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = PredictionWriter(f, fmt, SPEC, top, extra_columns=("file_bytes",))
        for n, p in enumerate(PREDICTIONS):
            writer.write(p, {"file_bytes": 1000 + n})
    back = list(read_predictions(out))
    assert back == [_rounded(p, fmt, top) for p in PREDICTIONS]
    # what is read back writes the same bytes again
    again = io.StringIO(newline="")
    writer = PredictionWriter(again, fmt, SPEC, top, extra_columns=("file_bytes",))
    for n, p in enumerate(back):
        writer.write(p, {"file_bytes": 1000 + n})
    assert again.getvalue().encode("utf-8") == out.read_bytes()


def test_csv_row_layout(tmp_path: Path) -> None:
    rows = RowFormat("csv", SPEC)
    text = rows.header() + rows.row(PREDICTIONS[0])
    assert text.endswith("\r\n")
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["liveness"] == ""  # the untrained feature: its column, empty
    assert row["genre"] == "jazz" and row["genre_probability"] == "0.6124"
    assert row["tag:female vocals"] == "0.5556" and row["tempo"] == "121.6322"
    assert row["genre_tags"] == "Jazz 0.88; Folk, World, & Country 0.65; Pop/Rock 0.41"
    assert parse_genre_tags(row["genre_tags"]) == {
        "Jazz": 0.88,
        "Folk, World, & Country": 0.65,
        "Pop/Rock": 0.41,
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_torn_last_row_is_left_out(tmp_path: Path, fmt: str) -> None:
    rows = RowFormat(fmt, SPEC)
    whole = rows.header() + rows.row(PREDICTIONS[0])
    out = tmp_path / f"r.{fmt}"
    out.write_text(whole + rows.row(PREDICTIONS[1])[:40], encoding="utf-8", newline="")
    assert [p.path for p in read_predictions(out)] == [PREDICTIONS[0].path]


def test_malformed_rows_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,energy\nsong.flac,loud\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: malformed row"):
        list(read_predictions(bad))
    bad.write_text("file,energy\nsong.flac,0.5\n")
    with pytest.raises(ValueError, match=r"bad.csv: no 'path' column"):
        list(read_predictions(bad))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.flac"}\n{"path": "b.flac", "genre": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed line"):
        list(read_predictions(bad))
    bad.write_text('{"genre": []}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: no 'path'"):
        list(read_predictions(bad))
    with pytest.raises(ValueError, match="format must be"):
        RowFormat("tsv", SPEC)
