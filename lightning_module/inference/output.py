"""Where the output formats used to live; they are in :mod:`lightning_module.inference.formats`
now (``csv_rows``, ``json_lines``, ``results``: written and read back; ``text``: the terminal).
These names stay importable from here for scripts and tests written against this module."""

from __future__ import annotations

from lightning_module.inference.folder_table import audio_files
from lightning_module.inference.formats.csv_rows import (
    GENRE_TAG_TOP,
    prediction_columns,
    prediction_record,
    top_genre_tags,
)
from lightning_module.inference.formats.results import PredictionWriter
from lightning_module.inference.formats.text import (
    TIMELINE_FEATURES,
    format_prediction,
    format_timeline,
    model_notes,
)

__all__ = [
    "GENRE_TAG_TOP",
    "TIMELINE_FEATURES",
    "PredictionWriter",
    "audio_files",
    "format_prediction",
    "format_timeline",
    "model_notes",
    "prediction_columns",
    "prediction_record",
    "top_genre_tags",
]
