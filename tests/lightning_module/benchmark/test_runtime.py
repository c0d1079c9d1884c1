"""The runtime rows of the benchmark run end to end on a tiny configuration (no timing is
asserted; the venv rows are skipped: building one needs the package index)."""

from __future__ import annotations

from pathlib import Path

from lightning_module.benchmark.core import BenchmarkResult, format_table, machine_info
from lightning_module.benchmark.runtime import (
    RuntimeBenchConfig,
    disk_mb,
    measure_runtime,
    runtime_rows,
)


def test_runtime_rows_end_to_end(trained_checkpoint: Path, tmp_path: Path) -> None:
    cfg = RuntimeBenchConfig(
        work_dir=tmp_path,
        checkpoint=trained_checkpoint,
        files=2,
        seconds=3.0,
        repeats=1,
        cold_runs=1,
        long_seconds=5.0,
        venv=False,
    )
    result = measure_runtime(cfg, say=lambda *a, **k: None)
    assert Path(result["onnx"]).is_file() and "install" not in result
    assert result["runtime_code"].startswith("full venv")
    cold = result["cold"]
    assert len(cold["runs"]["runtime"]) == len(cold["runs"]["torch"]) == 1
    assert "--onnx" in cold["commands"]["runtime"]
    assert "--checkpoint" in cold["commands"]["torch"]
    assert cold["ratio_runtime_over_torch"] > 0
    assert result["long_file"]["peak_rss_mb"] > 0
    folder = result["folder"]
    assert folder["files"] == 2
    for key in ("onnx", "torch", "floor_decode", "floor_windows"):
        assert folder[key]["files_per_second"] > 0
    assert 0 < folder["onnx"]["forward_seconds"] < folder["onnx"]["wall_seconds"]
    rows = runtime_rows(result)
    assert {r[0] for r in rows} == {"runtime"} and len(rows) == 7
    table = format_table(BenchmarkResult(machine=machine_info("cpu"), config={}, runtime=result))
    assert "predict_files ONNX" in table and runtime_rows({}) == []
    # a second run reuses the exported model and the generated audio
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runtime").rglob("*.*")}
    measure_runtime(
        RuntimeBenchConfig(**{**cfg.__dict__, "long_seconds": 0, "files": 0}),
        say=lambda *a, **k: None,
    )
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_disk_mb_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "b").hardlink_to(tmp_path / "a")
    assert 0.09 < disk_mb(tmp_path) < 0.2
