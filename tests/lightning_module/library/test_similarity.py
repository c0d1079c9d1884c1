"""The "more like this" index: it round-trips, updates incrementally (embedding only new and
changed files), answers from stored embeddings or new files, and exact and HNSW search agree."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.synthetic import render_clip
from lightning_module.inference.tagger import Tagger
from lightning_module.library import similarity as sim

SONGS = [("rock", "energetic"), ("classical", "calm"), ("electronic", "happy"), ("jazz", "sad")]


def write_song(path: Path, genre: str, mood: str, seed: int, seconds: float = 3.0) -> Path:
    x, _ = render_clip(genre, mood, seconds, 22050, np.random.default_rng(seed))
    sf.write(path, x, 22050)
    return path


class CountingTagger:
    """A real Tagger whose embedding passes are counted (no behaviour changed)."""

    def __init__(self, tagger: Tagger) -> None:
        self._tagger = tagger
        self.passes = 0

    def window_outputs(self, *args, **kwargs):
        self.passes += 1
        return self._tagger.window_outputs(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._tagger, name)


@pytest.fixture(scope="module")
def tagger(trained_checkpoint: Path) -> Tagger:
    return Tagger.from_file(trained_checkpoint)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    for i, (genre, mood) in enumerate(SONGS):
        where = folder / "sub" if i % 2 else folder
        write_song(where / f"{genre}.wav", genre, mood, seed=i)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    return folder


def model(trained_checkpoint: Path, tagger) -> dict:
    return sim.model_info(trained_checkpoint, tagger)


def test_index_round_trips_and_updates_incrementally(
    tagger: Tagger, trained_checkpoint: Path, library: Path, tmp_path: Path
) -> None:
    path = tmp_path / "library.index"
    counting = CountingTagger(tagger)
    index, stats = sim.update_index(
        counting, library, path, model(trained_checkpoint, tagger), progress=False
    )
    assert (stats.embedded, stats.kept, stats.removed) == (4, 0, 0) and counting.passes == 4
    loaded = sim.LibraryIndex.load(path)
    assert [e.path for e in loaded.entries] == [e.path for e in index.entries]
    assert np.array_equal(loaded.embeddings, index.embeddings)
    assert loaded.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0, atol=1e-5)
    first = loaded.entries[0]
    assert first.size == os.path.getsize(first.path) and "genre" in first.tags
    with zipfile.ZipFile(path) as z:  # plain arrays, no pickle
        assert sorted(z.namelist()) == ["embeddings.npy", "meta.npy"]

    # nothing changed: nothing embedded
    counting.passes = 0
    _, stats = sim.update_index(counting, library, path, model(trained_checkpoint, tagger), False)
    assert (stats.embedded, stats.kept, counting.passes) == (0, 4, 0)

    # one new, one changed, one removed: two embedded
    write_song(library / "new.wav", "folk", "happy", seed=9)
    write_song(library / "rock.wav", "rock", "happy", seed=11, seconds=3.5)
    (library / "sub" / "classical.wav").unlink()
    index, stats = sim.update_index(
        counting, library, path, model(trained_checkpoint, tagger), False
    )
    assert (stats.embedded, stats.kept, stats.removed) == (2, 2, 1) and counting.passes == 2
    assert len(index) == 4 and all(Path(e.path).exists() for e in index.entries)

    # another model: everything again
    other = {**model(trained_checkpoint, tagger), "name": "another model"}
    _, stats = sim.update_index(counting, library, path, other, False)
    assert stats.embedded == 4 and "another model" in stats.rebuilt_reason


def test_query_from_the_index_and_from_a_new_file(
    tagger: Tagger, trained_checkpoint: Path, library: Path, tmp_path: Path
) -> None:
    path = tmp_path / "library.index"
    index, _ = sim.update_index(tagger, library, path, model(trained_checkpoint, tagger), False)
    song = library / "rock.wav"
    found = sim.query_song(index, song, k=10, index_path=path)
    assert len(found) == 3 and str(song.resolve()) not in [n.entry.path for n in found]
    distances = [n.distance for n in found]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    # the same audio under another name, not in the index: its twin is the nearest
    copy = tmp_path / "copy_of_rock.wav"
    shutil.copy(song, copy)
    with pytest.raises(sim.LibraryIndexError, match="not in the index"):
        sim.query_song(index, copy, k=2)
    near = sim.query_song(index, copy, k=2, tagger=tagger)
    assert near[0].entry.path == str(song.resolve()) and near[0].distance < 1e-4
    m3u = sim.write_m3u(tmp_path / "like.m3u8", [n.entry.path for n in near])
    lines = m3u.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and lines[2] == "music/rock.wav"  # relative to the playlist


def test_exact_and_hnsw_search_agree(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("hnswlib")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    entries = [sim.Entry(f"/music/{i}.mp3", 1, 1) for i in range(300)]
    index = sim.LibraryIndex(entries, vectors, {"name": "m", "embed_dim": 16})
    path = tmp_path / "big.index"
    monkeypatch.setattr(sim, "ANN_THRESHOLD", 100)  # a small library stands in for a large one
    index.ann = sim._build_ann(index, path)
    index.save(path)
    loaded = sim.LibraryIndex.load(path)
    ann = sim.Searcher(loaded, path)
    exact = sim.Searcher(loaded, path, method="exact")
    assert (ann.method, exact.method) == ("ann", "exact")
    queries = vectors[:20]
    for a, e in zip(
        ann.query(queries, 5, range(20)), exact.query(queries, 5, range(20)), strict=True
    ):
        assert [n.entry.path for n in a] == [n.entry.path for n in e]
        assert np.allclose([n.distance for n in a], [n.distance for n in e], atol=1e-4)
    # a graph that does not belong to the index is not used
    loaded.ann = {**loaded.ann, "count": 299}
    assert sim.Searcher(loaded, path).method == "exact"


@pytest.mark.parametrize("case", ["missing", "garbage", "pickle", "wrong_shape"])
def test_bad_index_files_are_one_line_errors(case: str, tmp_path: Path) -> None:
    path = tmp_path / "library.index"
    if case == "garbage":
        path.write_bytes(b"not a zip at all")
    elif case == "pickle":
        with open(path, "wb") as f:
            np.savez(f, embeddings=np.zeros((1, 2)), meta=np.array([{"x": 1}], dtype=object))
    elif case == "wrong_shape":
        meta = {"format": sim.INDEX_FORMAT, "version": sim.INDEX_VERSION, "model": {},
                "entries": [{"path": "/a", "size": 1, "mtime_ns": 1, "tags": {}}]}  # fmt: skip
        raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, embeddings=np.zeros((3, 2), np.float32), meta=raw)
    with pytest.raises(sim.LibraryIndexError) as err:
        sim.LibraryIndex.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unreadable_files_are_skipped_and_retried(
    tagger: Tagger, trained_checkpoint: Path, library: Path, tmp_path: Path
) -> None:
    (library / "broken.mp3").write_bytes(np.random.default_rng(1).bytes(3000))
    errors = io.StringIO()
    path = tmp_path / "library.index"
    index, stats = sim.update_index(
        tagger, library, path, model(trained_checkpoint, tagger), False, errors
    )
    assert len(index) == 4 and stats.failed[0][0].endswith("broken.mp3")
    assert "skipped:" in errors.getvalue()
    _, stats = sim.update_index(tagger, library, path, model(trained_checkpoint, tagger), False)
    assert len(stats.failed) == 1  # not stored: tried again next time
