"""The path benchmark end to end on generated embeddings (no timing asserted): every method
gives A-to-B paths without repeats, and the report ranks them as the ring's geometry says."""

from __future__ import annotations

from pathlib import Path

from lightning_module.benchmark.paths import METHODS, format_paths_report, path_quality, pools
from lightning_module.library import similarity as sim
from tests.lightning_module.library.tiny_index import ring_embeddings


def test_path_quality_on_a_ring() -> None:
    x = ring_embeddings(60)
    entries = [sim.Entry(f"/m/{i}", 0, 0) for i in range(60)]
    index = sim.LibraryIndex(entries, x, {"name": "ring"})
    # two "genres": the two halves of the ring
    labels = {e.path: {"genre": {"a" if i < 30 else "b"}} for i, e in enumerate(entries)}
    found = path_quality(index, labels, count=8, pairs=6)  # asserts A first, B last, no repeats
    rows = {r["method"]: r for r in found["rows"]}
    assert set(rows) == set(METHODS)
    ours, line, rand = (
        rows["beam, + line, sum of squares (ours)"],
        rows["straight line"],
        rows["random order"],
    )
    assert ours["mean_max_step"] < line["mean_max_step"] < rand["mean_max_step"]
    assert ours["continuity"]["genre"] > rand["continuity"]["genre"]
    text = format_paths_report({"model": "ring", "pools": [{"pool": "ring", **found}]})
    assert "ring: 60 songs, 6 random (A, B) pairs, 8 songs per path" in text


def test_pools_read_the_shared_label_tables(tmp_path: Path) -> None:
    (tmp_path / "gtzan3").mkdir()
    (tmp_path / "gtzan3" / "labels.csv").write_text(
        "track_id,audio_path,genre\ng:1,jazz/1.ogg,jazz\ng:2,rock/2.ogg,rock\n"
    )
    (tmp_path / "mood4q").mkdir()
    (tmp_path / "mood4q" / "labels.csv").write_text(
        "track_id,audio_path,quadrant,mood,allmusic_genres\n"
        "4q:1,Q1/1.mp3,Q1,happy,Pop/Rock; Jazz\n4q:2,Q4/2.mp3,Q4,calm,Folk\n"
    )
    found = pools(tmp_path)
    assert [c["labels"] for c in found["gtzan"]] == [{"genre": {"jazz"}}, {"genre": {"rock"}}]
    assert found["gtzan"][0]["path"] == str((tmp_path / "gtzan3" / "jazz" / "1.ogg").resolve())
    first = found["mood4q"][0]["labels"]
    assert first == {"mood": {"happy"}, "allmusic genre": {"Pop/Rock", "Jazz"}}
