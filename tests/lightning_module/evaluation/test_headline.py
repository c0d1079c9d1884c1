"""The headline of an evaluation report: the numbers per source and per-genre accuracy."""

from __future__ import annotations

from lightning_module.evaluation.headline import headline, headline_lines, per_class_accuracy

GENRES = ["blues", "metal", "rock"]
REPORT = {
    "sources": {
        "gtzan7": {
            "n": 7,
            "genre": {
                "cnn": {"n": 7, "accuracy": 6 / 7, "accuracy_open": 5 / 7},
                "confusion": {
                    "true": ["blues", "metal"],
                    "predicted": GENRES,
                    "matrix": [[5, 0, 1], [0, 0, 1]],
                },
            },
        },
        "mood4q": {
            "n": 90,
            "mood": {"cnn": {"n": 90, "macro_f1": 0.71}},
            "features": {
                "energy": {"auc_vs_sign": {"n": 90, "cnn": 0.96}},
                "valence": {"auc_vs_sign": {"n": 90, "cnn": None}},
            },
        },
    }
}


def test_headline_reads_every_column_it_has() -> None:
    table = headline(REPORT)
    assert table["gtzan7"] == {"genre_open": 5 / 7, "genre_closed": 6 / 7, "n_genre": 7}
    assert table["mood4q"] == {
        "mood_macro_f1": 0.71,
        "n_mood": 90,
        "arousal_auc": 0.96,
        "n_arousal": 90,
    }


def test_per_genre_accuracy_counts_and_says_when_too_few() -> None:
    rows = per_class_accuracy(REPORT, "genre", "gtzan7")
    assert [(r["label"], r["n"], r["correct"], r["judged"]) for r in rows] == [
        ("blues", 6, 5, True),
        ("metal", 1, 0, False),
    ]
    text = "\n".join(headline_lines(REPORT))
    assert "| gtzan7 | 0.714 (7) | 0.857 |" in text
    assert "| metal | 1 | 0 | 0.00 (fewer than 5 clips: too few to judge) |" in text
