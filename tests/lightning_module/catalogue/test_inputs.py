"""The inputs of a catalogue run: folder, list, CSV and Parquet tables (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_module.catalogue.inputs import CatalogueError, read_input


def test_a_list_names_its_files_each_once(tmp_path: Path) -> None:
    listed = tmp_path / "paths.txt"
    listed.write_text(
        "# my catalogue\n/a/one.mp3\n\n/a/two.flac\n/a/one.mp3\n/a/cover.jpg\n/a/x.xyz\n"
    )
    listing = read_input(listed)
    assert listing.audio == [Path("/a/one.mp3"), Path("/a/two.flac")]
    assert listing.unknown == [Path("/a/x.xyz")]
    assert listing.not_audio == {"listed twice": 1, "sidecar": 1}


def test_tables_read_the_named_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"file": ["/m/b.ogg", None, "/m/a.wav"], "n": [1, 2, 3]}),
                   tmp_path / "t.parquet")  # fmt: skip
    assert read_input(tmp_path / "t.parquet", "file").audio == [Path("/m/a.wav"), Path("/m/b.ogg")]
    (tmp_path / "t.csv").write_text("artist,path\nX,/m/c.mp3\nY,\n")
    assert read_input(tmp_path / "t.csv").audio == [Path("/m/c.mp3")]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_unknown_column_is_one_line_naming_file_and_column(tmp_path: Path, suffix: str) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = tmp_path / f"tracks{suffix}"
    if suffix == ".csv":
        table.write_text("file,artist\n/m/a.wav,X\n")
    else:
        pq.write_table(pa.table({"file": ["/m/a.wav"], "artist": ["X"]}), table)
    with pytest.raises(CatalogueError) as err:
        read_input(table)
    text = str(err.value)
    assert "\n" not in text and str(table) in text and "'path'" in text and "file" in text


def test_missing_and_binary_inputs_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no such folder, list or table"):
        read_input(tmp_path / "nope")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2" * 10)
    with pytest.raises(CatalogueError, match="binary"):
        read_input(tmp_path / "blob.bin")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CatalogueError, match="not a readable Parquet table"):
        read_input(tmp_path / "bad.parquet")
