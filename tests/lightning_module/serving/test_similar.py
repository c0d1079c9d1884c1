"""``GET /v1/similar`` and ``GET /v1/path`` on a real server on 127.0.0.1 with a real client:
answers from a small generated index, songs named by path or id, everything outside the music
root refused, unknown ids 404, counts capped, the index re-read when it changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lightning_module.inference.tagger import Tagger, default_model
from lightning_module.library.similarity import LibraryIndex, LibraryIndexError
from lightning_module.library.song_index import SongIndex, song_id
from lightning_module.serving.similar import MAX_PATH, MAX_SIMILAR
from tests.lightning_module.library.tiny_index import write_tiny_index
from tests.lightning_module.serving.conftest import ThreadServer, make_service

SONGS = MAX_PATH + 20  # more than a path may hold, so the cap (not the index) cuts it


@pytest.fixture(scope="module")
def model() -> Path:
    """The shipped ONNX model: the answers never run it, so the cheapest model to load will do."""
    return default_model()


@pytest.fixture(scope="module")
def tagger(model: Path) -> Tagger:
    return Tagger.from_file(model)


@pytest.fixture(scope="module")
def served(model, tagger, tmp_path_factory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("similar")
    index_path = tmp / "library.index"
    write_tiny_index(tmp / "music", index_path, SONGS)
    (tmp / "outside.wav").touch()
    (tmp / "music" / "link_out.wav").symlink_to(tmp / "outside.wav")
    (tmp / "music" / "link_in.wav").symlink_to(tmp / "music" / "album0" / "song003.wav")
    (tmp / "music" / "not_indexed.wav").touch()
    service = make_service(model, tmp, tagger, songs=SongIndex(index_path, tmp / "music"))
    with ThreadServer(service) as running:
        running.tmp = tmp
        yield running


def get(server: ThreadServer, url: str, **params):
    with server.client() as client:
        return client.get(url, params=params)


def test_similar_by_path_and_by_id(served) -> None:
    index = LibraryIndex.load(served.tmp / "library.index")
    by_path = get(served, "/v1/similar", path="album0/song003.wav", count=4)
    assert by_path.status_code == 200, by_path.text
    answer = by_path.json()
    assert answer["song"]["path"] == "album0/song003.wav"
    assert answer["song"]["id"] == song_id(index.entries[3].path)
    matches = answer["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3, 4] and answer["count"] == 4
    # the ring's neighbours of song 3, nearest first, each similarity = 1 - cosine distance / 2
    assert {m["path"] for m in matches[:2]} == {"album0/song002.wav", "album0/song004.wav"}
    x = index.embeddings
    for m in matches:
        row = int(m["path"][-7:-4])
        cosine = 1.0 - float(x[3] @ x[row])
        assert m["similarity"] == pytest.approx(1.0 - cosine / 2.0, abs=1e-5)
        assert m["distance"] == pytest.approx(1.0 - m["similarity"], abs=1e-5)
        assert 0.0 <= m["similarity"] <= 1.0
    sims = [m["similarity"] for m in matches]
    assert sims == sorted(sims, reverse=True)
    assert matches[0]["model_tags"]["genre"] == [{"label": "rock", "probability": 0.9}]
    by_id = get(served, "/v1/similar", id=answer["song"]["id"], count=4).json()
    assert by_id["matches"] == matches
    # a symlink that stays inside the root is its target
    assert get(served, "/v1/similar", path="link_in.wav", count=4).json()["matches"] == matches


def test_path_starts_at_a_ends_at_b_without_repeats(served) -> None:
    start = song_id(str((served.tmp / "music" / "album1" / "song010.wav").resolve()))
    got = get(served, "/v1/path", **{"from": start, "to": "album4/song045.wav", "count": 9})
    assert got.status_code == 200, got.text
    answer = got.json()
    songs = answer["songs"]
    paths = [s["path"] for s in songs]
    assert paths[0] == "album1/song010.wav" and paths[-1] == "album4/song045.wav"
    assert len(paths) == len(set(paths)) == 9 == answer["count"]
    assert [s["position"] for s in songs] == list(range(9))
    assert answer["from"] == start and answer["to"] == songs[-1]["id"]
    assert songs[0]["similarity"] == 1.0 and songs[0]["step_similarity"] is None
    numbers = [int(p[-7:-4]) for p in paths]
    assert numbers == sorted(numbers)  # along the ring, never back
    steps = [s["step_cosine_distance"] for s in songs[1:]]
    assert max(steps) == pytest.approx(answer["steps"]["max_cosine_distance"])


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"path": "../outside.wav"}, 403, "outside the music root"),
        ({"path": "album0/../../outside.wav"}, 403, "outside the music root"),
        ({"path": "link_out.wav"}, 403, "outside the music root"),
        ({"path": "/etc/passwd"}, 403, "outside the music root"),
        ({"id": "0123456789abcdef"}, 404, "no song with this id"),
        ({"path": "not_indexed.wav"}, 404, "not in the similarity index"),
        ({"path": "album0/nothing.wav"}, 404, "no such file"),
        ({"path": "a", "id": "0123456789abcdef"}, 422, "exactly one"),
        ({}, 422, "exactly one"),
        ({"path": "album0/song001.wav", "count": 0}, 422, "query parameter 'count'"),
    ],
)
def test_similar_refusals(served, params, status, says) -> None:
    got = get(served, "/v1/similar", **params)
    assert got.status_code == status, got.text
    assert list(got.json()) == ["detail"] and says in got.json()["detail"]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"from": "../outside.wav", "to": "album0/song001.wav"}, 403, "outside the music root"),
        ({"from": "album0/song001.wav", "to": "link_out.wav"}, 403, "outside the music root"),
        ({"from": "album0/song001.wav", "to": "ffffffffffffffff"}, 404, "to ffffffffffffffff"),
        ({"from": "album0/song001.wav", "to": "album0/song001.wav"}, 422, "the same song"),
        ({"from": "album0/song001.wav"}, 422, "query parameter 'to'"),
        ({"from": "album0/song001.wav", "to": "album0/song002.wav", "count": 1}, 422, "count"),
    ],
)
def test_path_refusals(served, params, status, says) -> None:
    got = get(served, "/v1/path", **params)
    assert got.status_code == status, got.text
    assert list(got.json()) == ["detail"] and says in got.json()["detail"]


def test_counts_are_capped(served) -> None:
    similar = get(served, "/v1/similar", path="album0/song001.wav", count=10_000).json()
    assert similar["count_cap"] == MAX_SIMILAR and similar["capped"] is True
    assert similar["count_asked"] == 10_000 and similar["count"] == SONGS - 1  # all the others
    path = get(served, "/v1/path", **{"from": "album0/song001.wav", "to": "album6/song060.wav"})
    assert path.json()["count"] == 25  # OpenSubsonic's default
    walk = get(
        served,
        "/v1/path",
        **{"from": "album0/song001.wav", "to": "album6/song060.wav", "count": 999},
    ).json()
    assert walk["capped"] is True and walk["count_cap"] == MAX_PATH
    assert len(walk["songs"]) == MAX_PATH == len({s["id"] for s in walk["songs"]})
    assert walk["songs"][-1]["path"] == "album6/song060.wav"


def test_the_model_endpoint_describes_the_index(served) -> None:
    info = get(served, "/v1/model").json()["similarity"]
    assert info["songs"] == SONGS and info["model"] == "tiny" and info["index"] == "library.index"


def test_a_changed_index_is_reread_and_a_broken_one_ignored(model, tagger, tmp_path) -> None:
    index_path = tmp_path / "library.index"
    write_tiny_index(tmp_path / "music", index_path, 6)
    with ThreadServer(
        make_service(model, tmp_path, tagger, songs=SongIndex(index_path, tmp_path / "music"))
    ) as s:
        first = get(s, "/v1/similar", path="album0/song001.wav", count=50).json()
        write_tiny_index(tmp_path / "music", index_path, 8)
        second = get(s, "/v1/similar", path="album0/song001.wav", count=50).json()
        index_path.write_bytes(b"torn")
        third = get(s, "/v1/similar", path="album0/song001.wav", count=50)
    assert first["count"] == 5 and second["count"] == 7
    assert third.status_code == 200 and third.json()["count"] == 7  # the last good index


def test_no_index_is_a_clear_503(model, tagger, tmp_path) -> None:
    with ThreadServer(make_service(model, tmp_path, tagger)) as server:
        got = get(server, "/v1/path", **{"from": "a.wav", "to": "b.wav"})
        info = get(server, "/v1/model").json()
    assert got.status_code == 503 and "--index" in got.json()["detail"]
    assert info["similarity"] is None


def test_a_missing_index_or_root_stops_the_start(tmp_path, capsys) -> None:
    from scripts.serve import main, parse_args

    with pytest.raises(LibraryIndexError, match="no such index"):
        SongIndex(tmp_path / "none.index", tmp_path)
    # the index is read before any model: this model file does not even exist
    args = ["--onnx", str(tmp_path / "never_loaded.onnx"), "--music-root", str(tmp_path)]
    assert main([*args, "--index", str(tmp_path / "none.index")]) == 2
    assert "none.index: no such index" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--index", str(tmp_path / "x.index")])
    assert "--index needs --music-root" in capsys.readouterr().err


def test_songs_outside_the_root_are_never_served(model, tagger, tmp_path) -> None:
    index_path = tmp_path / "library.index"
    index = write_tiny_index(tmp_path / "lib", index_path, 6)
    (tmp_path / "music").mkdir()
    inside = tmp_path / "music" / "song.wav"
    inside.touch()
    index.entries[0].path = str(inside.resolve())  # one song below the root, five elsewhere
    index.embeddings[0] = np.asarray(index.embeddings[1])
    index.save(index_path)
    service = make_service(model, tmp_path, tagger, songs=SongIndex(index_path, tmp_path / "music"))
    with ThreadServer(service) as s:
        info = get(s, "/v1/model").json()["similarity"]
        alone = get(s, "/v1/similar", path="song.wav", count=5).json()
    assert info["songs"] == 1 and info["outside_music_root"] == 5
    assert alone["matches"] == []  # the five outside are neither named nor listed
    assert not (Path(index.entries[1].path).is_relative_to(tmp_path / "music"))
