"""A catalogue run on a local Ray (started once per session): the folder run's rows, skipped
files with their reasons, a kill and a resume without duplicates, one-line input errors."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_module.catalogue.inputs import CatalogueError
from lightning_module.catalogue.pipeline import Scale
from lightning_module.catalogue.run import CatalogueRun, tag_catalogue
from lightning_module.catalogue.table import Output
from lightning_module.inference.shipped import shipped_onnx
from scripts.tag_catalogue import main
from tests.conftest import REPO_ROOT
from tests.lightning_module.catalogue.conftest import CLIPS

pytestmark = pytest.mark.slow


def _rows(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), {r["path"]: r for r in reader}


def _same(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-4)
    except ValueError:
        return a == b


def test_a_killed_run_resumes_to_the_folder_runs_rows(
    ray_address: str, catalogue: Path, tmp_path: Path, capsys
) -> None:
    """One test for both (each Ray run costs seconds): a run killed mid-way, resumed, must
    give the folder run's rows, once each, and list the broken file with its reason."""
    from lightning_module.commands.tag import main as tag_main

    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "tag_catalogue.py"), str(catalogue),
               "--out", str(out), "--address", ray_address, "--part-rows", "1",
               "--files-per-task", "1", "--files-per-call", "1", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # the client joins the session's Ray
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not list((out / "tags").glob("part-*.parquet")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no part written in 90 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_with = len(list((out / "tags").glob("part-*.parquet")))
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert 1 <= killed_with < len(CLIPS), "the run was not killed mid-way"

    folder_csv = tmp_path / "folder.csv"
    assert tag_main([str(catalogue), "--out", str(folder_csv)]) == 0
    capsys.readouterr()
    assert main([str(catalogue), "--out", str(out), "--csv", "--files-per-task", "2",
                 "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    table = Output(out, _spec(), {}).read()
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)) == len(CLIPS)  # no duplicates, none missing

    columns, expected = _rows(folder_csv)
    got_columns, got = _rows(out / "tags.csv")
    assert got_columns == columns and "file_mtime_ns" in columns
    assert got.keys() == expected.keys()
    for path, row in expected.items():
        assert all(_same(row[c], got[path][c]) for c in columns), path
    # the broken mp3 and the unknown file, with their reasons, in the table and on stderr
    _, skipped = _rows(out / "skipped.csv")
    assert sorted(Path(p).name for p in skipped) == ["broken.mp3", "notes.xyz"]
    assert skipped[str(catalogue / "broken.mp3")]["kind"] == "corrupt or unreadable"
    assert skipped[str(catalogue / "notes.xyz")]["reason"].startswith("unknown format")
    assert any(line.startswith(f"skipped: {catalogue / 'broken.mp3'}: ") for line in err)
    kept = killed_with  # one row a part
    assert err[-1] == (
        f"tagged {len(CLIPS) - kept} file(s), kept {kept} from an earlier run, skipped 2 "
        f"(corrupt or unreadable 1, unknown format 1), not audio 1 (sidecar 1); wrote {out}"
    )
    # and a rerun has nothing left to do (Ray is not even started)
    again = tag_catalogue(CatalogueRun(catalogue, out, shipped_onnx()), progress=False)
    assert (again.kept, again.tagged) == (len(CLIPS), 0)


def test_input_errors_are_one_line_before_ray_starts(tmp_path: Path, capsys) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = tmp_path / "tracks.parquet"
    pq.write_table(pa.table({"file": ["/m/a.wav"]}), table)
    assert main([str(table), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {table}: no column 'path'")
    with pytest.raises(CatalogueError, match="no column 'path'"):
        tag_catalogue(CatalogueRun(table, tmp_path / "o", shipped_onnx(), scale=Scale()))


def _spec():
    from lightning_module.inference.runners import OnnxRunner

    return OnnxRunner(shipped_onnx()).hparams
