"""The csv source: mood tables with previews served by a real local HTTP server, and the real
shared tables with local audio."""

from __future__ import annotations

import pandas as pd
import pytest

from datamodules.manifest import read_manifest
from datamodules.sources.registry import build_source
from tests.conftest import SHARED_DATA, write_tone
from tests.datamodules.sources.http_server import (
    LocalServer,
    dropped_route,
    failing_first,
    file_route,
    status_route,
)

FAST = {"workers": 3, "retries": 3, "backoff": 0.01, "timeout": 5}


@pytest.fixture(scope="module")
def mp3(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("mp3") / "tone.mp3"
    return write_tone(path, seconds=2.0, sr=16000).read_bytes()


def test_mood_tables_with_previews_survive_a_misbehaving_server(tmp_path, mp3):
    with LocalServer() as server:
        server.routes.update(
            {
                "/p/ok1.mp3": file_route(mp3),
                "/p/ok2.mp3": file_route(mp3),
                "/p/both.mp3": file_route(mp3),
                "/p/limited.mp3": failing_first(
                    1, status_route(429, {"Retry-After": "1"}), file_route(mp3)
                ),
                "/p/flaky.mp3": failing_first(1, status_route(500), file_route(mp3)),
                "/p/dropped.mp3": failing_first(1, dropped_route(mp3), file_route(mp3)),
                "/p/truncated.mp3": file_route(mp3[:700]),
                "/p/huge.mp3": file_route(b"\xff" * 300_000),
                "/p/slowdown.mp3": status_route(429, {"Retry-After": "3600"}),
            }
        )
        happy = pd.DataFrame(
            {
                "id": ["ok1", "limited", "both", "trunc", "gone", "ftp", "huge", "slow"],
                "artist": ["A", "B", "C", "D", "E", "F", "G", "L"],
                "energy": [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
                "tempo": [120, 121, 122, 123, 124, 125, 126, 127],
                "preview_url": [
                    server.url("/p/ok1.mp3"),
                    server.url("/p/limited.mp3"),
                    server.url("/p/both.mp3"),
                    server.url("/p/truncated.mp3"),
                    server.url("/p/missing.mp3"),
                    "ftp://example.org/x.mp3",
                    server.url("/p/huge.mp3?token=secret"),
                    server.url("/p/slowdown.mp3"),
                ],
            }
        )
        sad = pd.DataFrame(
            {
                "id": ["ok2", "flaky", "dropped", "both", "nourl"],
                "artist": ["H", "I", "J", "C", "K"],
                "energy": [0.1, 0.2, 0.3, 0.6, 0.1],
                "preview_url": [
                    server.url("/p/ok2.mp3"),
                    server.url("/p/flaky.mp3"),
                    server.url("/p/dropped.mp3"),
                    server.url("/p/both.mp3"),
                    "",
                ],
            }
        )
        happy.to_csv(tmp_path / "happy.csv", index=False)
        sad.to_csv(tmp_path / "sad.csv", index=False)
        config = {
            "name": "moods",
            "tables": [
                {"path": str(tmp_path / "happy.csv"), "mood": "happy"},
                {"path": str(tmp_path / "sad.csv"), "mood": "sad"},
            ],
            "id_prefix": "sp:",
            "download": {**FAST, "max_mb": 0.1, "max_retry_after": 5},
            "split": {"val_fraction": 0.3, "test_fraction": 0.0},
            "progress": False,
        }
        out = tmp_path / "out"
        summary = build_source("csv", config, out)
        df = read_manifest(out / "manifest.csv").set_index("track_id")
        assert sorted(df.index) == [
            "sp:both",
            "sp:dropped",
            "sp:flaky",
            "sp:limited",
            "sp:ok1",
            "sp:ok2",
        ]
        assert df.at["sp:both", "mood"] == "happy"  # two moods, tie: the first listed wins
        assert df.at["sp:ok2", "mood"] == "sad"
        assert df.at["sp:limited", "tempo"] == 121.0
        assert set(df["provider"]) == {"preview_url"}
        assert {p.name for p in (out / "audio").iterdir()} == {
            f"sp_{t}.mp3" for t in ("both", "dropped", "flaky", "limited", "ok1", "ok2")
        }
        assert server.hits["/p/limited.mp3"] == 2 and server.hits["/p/flaky.mp3"] == 2
        assert server.hits["/p/dropped.mp3"] == 2
        skipped = pd.read_csv(out / "skipped.csv").set_index("track_id")
        assert skipped["reason"].to_dict() == {
            "sp:trunc": "bad audio",
            "sp:gone": "http 404",
            "sp:ftp": "bad url",
            "sp:huge": "too large",
            "sp:nourl": "no audio",
            "sp:slow": "rate limited",  # Retry-After: 3600 is more than the build waits
        }
        assert "secret" not in (out / "skipped.csv").read_text()
        assert summary.notes["tracks listed twice"] == 1 and summary.notes["mood conflicts"] == 1
        assert (summary.listed, summary.with_audio, summary.downloaded) == (12, 6, 7)

        # Re-run: nothing complete is downloaded again; the truncated file (deleted) is retried.
        before = (out / "manifest.csv").read_bytes()
        hits = server.hits.copy()
        again = build_source("csv", config, out)
        assert (out / "manifest.csv").read_bytes() == before
        assert again.reused == 6 and again.downloaded == 1
        assert server.hits - hits == {
            "/p/truncated.mp3": 1,
            "/p/missing.mp3": 1,
            "/p/huge.mp3": 1,
            "/p/slowdown.mp3": 1,
        }


@pytest.mark.skipif(not (SHARED_DATA / "tables").is_dir(), reason="shared data absent")
def test_real_spotify_moods_table_with_local_audio_by_track_id(tmp_path):
    table = SHARED_DATA / "tables/spotify_moods.csv"
    frame = pd.read_csv(table)
    ids = frame.groupby("mood").head(1)["id"].tolist()
    (tmp_path / "audio").mkdir()
    for track_id in ids:
        write_tone(tmp_path / "audio" / f"{track_id}.wav", seconds=1.2, sr=8000)
    config = {
        "tables": [str(table)],
        "audio_dir": str(tmp_path / "audio"),
        "lowercase_labels": True,
        "id_prefix": "spotify:",
        "split": {"val_fraction": 0.0, "test_fraction": 0.0},
        "progress": False,
    }
    summary = build_source("csv", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(df["mood"]) == ["calm", "energetic", "happy", "sad"]
    assert df[["danceability", "energy", "valence", "tempo", "loudness"]].notna().all().all()
    assert (df["loudness"] < 0).all() and (df["tempo"] > 30).all()
    assert summary.listed == len(frame) == summary.with_features == summary.labelled
    assert summary.skipped == {"no audio": len(frame) - 4}


@pytest.mark.skipif(not (SHARED_DATA / "tables").is_dir(), reason="shared data absent")
def test_real_fma_echonest_table_with_an_fma_style_audio_tree(tmp_path):
    table = SHARED_DATA / "tables/fma_echonest.csv"
    rows = pd.read_csv(table, dtype=str).dropna(subset=["genre"]).head(3)
    for track_id in rows["track_id"]:
        folder = tmp_path / "fma_small" / f"{int(track_id):06d}"[:3]
        folder.mkdir(parents=True, exist_ok=True)
        write_tone(folder / f"{int(track_id):06d}.mp3", seconds=1.2, sr=16000)
    config = {
        "tables": [str(table)],
        "audio_dir": str(tmp_path / "fma_small"),
        "audio_pattern": "{track_id:0>6}",
        "id_prefix": "fma:",
        "columns": {"track_id": "track_id"},
        "split": {"val_fraction": 0.0, "test_fraction": 0.0},
        "progress": False,
    }
    summary = build_source("csv", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")
    assert sorted(df.index) == sorted(f"fma:{t}" for t in rows["track_id"])
    first = rows.iloc[0]
    assert df.at[f"fma:{first['track_id']}", "genre"] == first["genre"]
    assert df.at[f"fma:{first['track_id']}", "energy"] == pytest.approx(float(first["energy"]))
    assert summary.listed == 8000
