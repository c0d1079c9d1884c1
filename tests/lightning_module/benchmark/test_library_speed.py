"""The library rows of the benchmark run end to end on a tiny folder (no timing is asserted)."""

from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf

from lightning_module.benchmark.library_speed import (
    LibraryBenchConfig,
    library_rows,
    measure_library,
    pinned,
)


def test_library_rows_end_to_end(trained_checkpoint: Path, tmp_path: Path) -> None:
    cfg = LibraryBenchConfig(files=3, seconds=3.0, workers=0, musicnn_files=0, long_seconds=20.0)
    result = measure_library(trained_checkpoint, tmp_path, cfg)
    folder = Path(result["folder"])
    assert sorted(p.suffix for p in folder.iterdir() if not p.name.startswith(".")) == [
        ".flac",
        ".m4a",
        ".mp3",
    ]
    for path in folder.iterdir():
        assert sf.info(str(path)).samplerate == 44100 if path.suffix != ".m4a" else True
    (run,) = result["runs"]
    assert run["files"] == 3 and run["workers"] == 0
    assert run["files_per_second"] > 0 and run["cpu_seconds_per_file"] > 0
    assert result["musicnn"] is None  # skipped: musicnn_files=0
    long = result["long_file"]
    assert long["seconds"] == 20.0 and long["peak_rss_mb"] > 100  # torch alone is more
    assert long["peak_rss_mb_30s_file"] > 100
    rows = library_rows(result)
    assert [r[0] for r in rows] == ["folder", "folder"]
    assert "files/s" in rows[0][2] and "peak RSS" in rows[1][1]
    # a second run reuses the generated audio
    mtimes = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = measure_library(
        trained_checkpoint, tmp_path, LibraryBenchConfig(**{**cfg.__dict__, "long_seconds": 0})
    )
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    assert "long_file" not in again and library_rows({}) == []


def test_pinned_restores_affinity_and_threads() -> None:
    import torch

    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    with pinned(1) as cores:
        assert cores == 1 and len(os.sched_getaffinity(0)) == 1 and torch.get_num_threads() == 1
    assert os.sched_getaffinity(0) == before and torch.get_num_threads() == threads
