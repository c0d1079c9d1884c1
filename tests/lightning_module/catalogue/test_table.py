"""The output folder without Ray: resume keeps, drops and refuses as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_module.catalogue.inputs import CatalogueError
from lightning_module.catalogue.table import Output, expected_state

pa = pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def spec() -> dict:
    from lightning_module.inference.runners import OnnxRunner
    from lightning_module.inference.shipped import shipped_onnx

    return OnnxRunner(shipped_onnx()).hparams


def _state(sha: str = "a" * 64) -> dict:
    return expected_state({"path": "/m.onnx", "bytes": 1, "sha256": sha}, {"offset": 0.0})


def _rows(output: Output, paths: dict[str, tuple[int, int]]):
    rows = [{"path": p, "windows": 1, "file_bytes": b, "file_mtime_ns": m, "genre": "rock"}
            for p, (b, m) in paths.items()]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=output.schema)


def test_resume_keeps_unchanged_drops_changed_and_never_duplicates(
    spec: dict, tmp_path: Path
) -> None:
    files = {"/a.mp3": (10, 1), "/b.mp3": (20, 2), "/c.mp3": (30, 3)}
    first = Output(tmp_path, spec, _state(), part_rows=2)
    assert first.open(files) == (set(), 0)
    first.add(_rows(first, files))  # 3 rows >= 2: one part
    first.add(_rows(first, {"/a.mp3": (10, 1)}))  # a duplicate (never written by a real run)
    first.flush()
    (tmp_path / "tags" / "part-x.parquet.tmp").write_bytes(b"torn")  # a kill mid-write
    changed = {**files, "/b.mp3": (21, 5)}  # b was rewritten since
    again = Output(tmp_path, spec, _state())
    kept, dropped = again.open(changed)
    assert kept == {"/a.mp3", "/c.mp3"} and dropped == 2  # b's old row and the second a
    assert sorted(again.read().column("path").to_pylist()) == ["/a.mp3", "/c.mp3"]
    assert not list((tmp_path / "tags").glob("*.tmp"))
    # rows of files not in this run's input stay
    assert Output(tmp_path, spec, _state()).open({"/z.mp3": (1, 1)}) == (set(), 0)
    assert again.read().num_rows == 2


def test_another_model_is_refused_in_one_line_unless_forced(spec: dict, tmp_path: Path) -> None:
    files = {"/a.mp3": (10, 1)}
    first = Output(tmp_path, spec, _state())
    first.open(files)
    first.add(_rows(first, files))
    first.flush()
    with pytest.raises(CatalogueError) as err:
        Output(tmp_path, spec, _state("b" * 64)).open(files)
    assert "\n" not in str(err.value) and "another model" in str(err.value)
    assert "--force" in str(err.value)
    forced = Output(tmp_path, spec, _state("b" * 64), force=True)
    assert forced.open(files) == (set(), 0) and forced.read().num_rows == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("not a catalogue")
    with pytest.raises(CatalogueError, match="not empty"):
        Output(tmp_path / "other", spec, _state()).open(files)
