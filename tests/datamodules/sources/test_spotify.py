"""The spotify source with REAL spotipy against a Spotify Web API stand-in on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from datamodules.manifest import read_manifest
from datamodules.sources.base import SourceError
from datamodules.sources.registry import build_source
from tests.conftest import REPO_ROOT, run_training, write_tone
from tests.datamodules.sources.http_server import (
    LocalServer,
    dropped_route,
    failing_first,
    file_route,
    status_route,
)
from tests.datamodules.sources.spotify_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    FakeSpotify,
    FakeTrack,
    spotify_config,
)

SECRETS = (
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
)
GENRE_MAP = {"rock": ["rock", "punk"], "pop": ["pop"], "electronic": ["house", "edm"]}


def features(i: int) -> dict:
    return {
        "danceability": 0.1 * i,
        "energy": 0.05 + 0.1 * i,
        "valence": 0.9 - 0.1 * i,
        "acousticness": 0.5,
        "instrumentalness": 0.01,
        "speechiness": 0.04,
        "liveness": 0.1,
        "tempo": 90.0 + i,
        "loudness": -8.0 - i,
    }


def catalogue() -> list[FakeTrack]:
    artists = {1: ("art1", "The Rockers"), 2: ("art2", "Popstar"), 3: ("art3", "Polka Band")}
    which = {1: 1, 2: 2, 3: 1, 4: 1, 5: 2, 6: 2, 7: 1, 8: 2, 9: 3, 10: 1}
    tracks = []
    for i in range(1, 11):
        artist_id, artist = artists[which[i]]
        tracks.append(
            FakeTrack(
                id=f"trk{i:02d}AbCdEf",
                name=f"Song {i}",
                artist_id=artist_id,
                artist=artist,
                isrc=f"USXX1{i:07d}",
                preview=i not in (6, 7, 8),
                features=features(i),
            )
        )
    return tracks


def tid(i: int) -> str:
    return f"trk{i:02d}AbCdEf"


PLAYLISTS = {
    "happyA": [tid(1), tid(2), tid(3), "local"],
    "happyB": [tid(4), tid(5)],
    "sadA": [tid(5), tid(6), tid(7), tid(8), tid(10)],
}
MOODS = {
    "happy": ["spotify:playlist:happyA", "https://open.spotify.com/playlist/happyB?si=abc"],
    "sad": ["sadA"],
    "energetic": ["editorial37i9dQZF1", f"https://open.spotify.com/track/{tid(9)}"],
}
ARTIST_GENRES = {"art1": ["indie rock", "garage punk"], "art2": ["dance pop"], "art3": ["polka"]}


@pytest.fixture(scope="module")
def mp3(tmp_path_factory) -> bytes:
    return write_tone(
        tmp_path_factory.mktemp("mp3") / "tone.mp3", seconds=2.0, sr=16000
    ).read_bytes()


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", CLIENT_SECRET)


def assert_no_secrets(folder, *texts):
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json", ".yaml", ".txt"):
            content = path.read_text(errors="replace")
            assert not any(s in content for s in SECRETS), path
    for text in texts:
        assert not any(s in text for s in SECRETS)


def test_full_build_with_paging_retries_deezer_fallback_and_a_training_run(
    tmp_path, mp3, credentials, caplog
):
    caplog.set_level(logging.DEBUG)
    with LocalServer() as server:
        fake = FakeSpotify(server, catalogue(), PLAYLISTS, ARTIST_GENRES, mp3)
        server.routes["/v1/playlists/happyB/items"] = failing_first(
            1, status_route(429, {"Retry-After": "1"}), fake.playlist_items
        )
        server.routes["/v1/audio-features/"] = failing_first(
            1, status_route(500), fake.features_route
        )
        server.routes[f"/previews/{tid(2)}.mp3"] = failing_first(
            1, dropped_route(mp3), file_route(mp3)
        )
        server.routes[f"/previews/{tid(10)}.mp3"] = file_route(mp3[:700])  # truncated mp3
        fake.deezer_isrc[f"USXX1{7:07d}"] = f"/deezer/previews/{tid(7)}.mp3"
        fake.deezer_search[("Popstar", "Song 8")] = f"/deezer/previews/{tid(8)}.mp3"
        config = spotify_config(
            server,
            moods=MOODS,
            genre_map=GENRE_MAP,
            deezer={"enabled": True, "api": server.url("/deezer")},
            split={"stratify": "mood", "val_fraction": 0.25, "test_fraction": 0.0},
        )
        out = tmp_path / "spotify"
        summary = build_source("spotify", config, out)

        assert server.hits["/v1/playlists/happyA/items"] == 2  # paged: 4 entries, 2 per page
        assert server.hits["/v1/playlists/happyB/items"] == 2  # 429, then Retry-After honoured
        assert server.hits["/v1/audio-features/"] == 2  # 500, then success
        assert server.hits[f"/previews/{tid(2)}.mp3"] == 2  # dropped mid-body, then complete
        assert server.hits["/v1/tracks/"] == 1 and server.hits["/v1/artists/"] == 1
    df = read_manifest(out / "manifest.csv").set_index("track_id")
    expected = {
        1: "happy",
        2: "happy",
        3: "happy",
        4: "happy",
        5: "happy",
        7: "sad",
        8: "sad",
        9: "energetic",
    }
    assert df["mood"].to_dict() == {f"spotify:{tid(i)}": m for i, m in expected.items()}
    assert df.at[f"spotify:{tid(1)}", "genre"] == "rock"
    assert df.at[f"spotify:{tid(2)}", "genre"] == "pop"
    assert pd.isna(df.at[f"spotify:{tid(9)}", "genre"])  # polka is unmapped
    assert df.at[f"spotify:{tid(4)}", "tempo"] == pytest.approx(94.0)
    assert df.at[f"spotify:{tid(4)}", "loudness"] == pytest.approx(-12.0)
    assert df.at[f"spotify:{tid(1)}", "artist"] == "The Rockers"
    providers = df["provider"].to_dict()
    assert providers.pop(f"spotify:{tid(7)}") == "deezer"  # by ISRC
    assert providers.pop(f"spotify:{tid(8)}") == "deezer"  # by artist + title
    assert set(providers.values()) == {"spotify"}
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(
        f"spotify_{tid(i)}.mp3" for i in expected
    )
    skipped = pd.read_csv(out / "skipped.csv").set_index("track_id")["reason"].to_dict()
    assert skipped == {f"spotify:{tid(6)}": "no audio", f"spotify:{tid(10)}": "bad audio"}
    assert summary.notes["tracks listed twice"] == 1 and summary.notes["mood conflicts"] == 1
    assert summary.notes["playlists unavailable"] == 1
    assert summary.notes["local or unavailable entries"] == 1
    assert summary.notes["deezer previews"] == 2
    assert (summary.listed, summary.labelled, summary.with_features, summary.with_audio) == (
        10,
        10,
        10,
        8,
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("editorial37i9dQZF1" in w and "404" in w for w in warnings) == 1
    assert_no_secrets(out, caplog.text)

    # The built manifest trains (one fast_dev_run for the whole source suite: CPU is shared).
    cli = run_training(tmp_path / "run", out / "manifest.csv", "--trainer.fast_dev_run=1")
    assert cli.trainer.global_step == 1
    assert cli.model.hparams.mood_names == ["energetic", "happy", "sad"]
    assert cli.model.hparams.genre_names == ["pop", "rock"]


def test_restricted_app_gets_one_clear_message_per_restriction_and_keeps_going(
    tmp_path, mp3, monkeypatch, caplog
):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text(
        f'SPOTIPY_CLIENT_ID={CLIENT_ID}\nexport SPOTIPY_CLIENT_SECRET="{CLIENT_SECRET}"\n'
    )
    with LocalServer() as server:
        fake = FakeSpotify(server, catalogue(), PLAYLISTS, ARTIST_GENRES, mp3, page_size=50)
        fake.features_forbidden = True
        config = spotify_config(server, moods=MOODS, env_file=str(env_file))
        out = tmp_path / "out"
        summary = build_source("spotify", config, out)
    df = read_manifest(out / "manifest.csv")
    assert len(df) == 7  # the tracks with a Spotify preview
    assert df[["energy", "valence", "tempo"]].isna().all().all()  # a mood without features
    assert set(df["mood"]) == {"happy", "sad", "energetic"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    restricted = {
        "audio-features refused (403)": "csv source",
        "have no preview_url": "Deezer fallback",
        "not found (404)": "csv source",
    }
    for what, hint in restricted.items():
        hits = [w for w in warnings if what in w]
        assert len(hits) == 1, what
        assert "2024-11-27" in hits[0] and hint in hits[0] and "\n" not in hits[0]
    assert summary.notes["audio-features refused (403)"] == 1
    assert summary.notes["no spotify preview"] == 3
    assert summary.skipped == {"no audio": 3}
    saved = json.loads((out / "summary.json").read_text())
    assert any("403" in m for m in saved["messages"])
    assert_no_secrets(out, caplog.text)


def test_missing_or_rejected_credentials_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    with LocalServer() as server:
        config = spotify_config(
            server, moods={"happy": ["p1"]}, env_file=str(tmp_path / "none.env")
        )
        with pytest.raises(
            SourceError, match="no SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET"
        ) as err:
            build_source("spotify", config, tmp_path / "out")
        assert "\n" not in str(err.value) and "csv source" in str(err.value)
        FakeSpotify(server, catalogue(), {"p1": [tid(1)]}, {}, b"")
        monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "wrong-secret")
        with pytest.raises(SourceError, match="refused the client credentials") as err:
            build_source("spotify", config, tmp_path / "out")
        assert "wrong-secret" not in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_killed_build_resumes_without_duplicates_to_the_same_manifest(tmp_path, mp3):
    moods = {"happy": ["happyA", "happyB"], "sad": ["sadA"]}
    with LocalServer() as server:
        fake = FakeSpotify(server, catalogue(), PLAYLISTS, ARTIST_GENRES, mp3, page_size=50)
        config = spotify_config(server, moods=moods, genre_map=GENRE_MAP, save_every=1)
        config["download"]["workers"] = 1
        env = {**os.environ, "SPOTIPY_CLIENT_ID": CLIENT_ID, "SPOTIPY_CLIENT_SECRET": CLIENT_SECRET}
        reference = build_source_with_env("spotify", config, tmp_path / "reference", env)
        previews = sum(v for k, v in server.hits.items() if k.startswith("/previews/"))

        server.hits.clear()
        fake.preview_delay = 0.3
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"source": "spotify", **config}))
        out = tmp_path / "resumed"
        process = subprocess.Popen(
            [
                sys.executable,
                "scripts/build_dataset.py",
                str(tmp_path / "config.yaml"),
                "--out",
                str(out),
                "--quiet",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline and process.poll() is None:
                manifest = out / "manifest.csv"
                if manifest.is_file() and len(manifest.read_text().splitlines()) >= 3:
                    break
                time.sleep(0.05)
            assert process.poll() is None, "the build ended before it could be killed"
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        partial = read_manifest(out / "manifest.csv")  # whatever was saved is a valid manifest
        assert 2 <= len(partial) < reference.with_audio
        fake.preview_delay = 0.0
        resumed = build_source_with_env("spotify", config, out, env)
        downloads = sum(v for k, v in server.hits.items() if k.startswith("/previews/"))
    assert (out / "manifest.csv").read_bytes() == (
        tmp_path / "reference" / "manifest.csv"
    ).read_bytes()
    assert resumed.reused >= len(partial)
    assert downloads <= previews + 1  # nothing complete downloaded twice (one may be in flight)
    assert not list((out / "audio").glob("*.tmp*"))


def build_source_with_env(name, config, out, env):
    """build_source with the credentials of ``env`` set for the call only."""
    saved = {k: os.environ.get(k) for k in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET")}
    os.environ.update({k: env[k] for k in saved})
    try:
        return build_source(name, config, out)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_big_playlists_are_paged_and_looked_up_in_batches(tmp_path, mp3, credentials):
    tracks = [
        FakeTrack(
            f"big{i:04d}XyZ",
            f"Tune {i}",
            f"artist{i % 120}",
            f"Artist {i % 120}",
            f"ISRC{i:08d}",
            preview=i == 0,
            features=features(i % 9),
        )
        for i in range(230)
    ]
    with LocalServer() as server:
        FakeSpotify(server, tracks, {"big": [t.id for t in tracks]}, {}, mp3, page_size=100)
        config = spotify_config(server, moods={"calm": ["big"]}, genre_map=GENRE_MAP)
        summary = build_source("spotify", config, tmp_path / "out")
        assert server.hits["/v1/playlists/big/items"] == 3  # 100 + 100 + 30
        assert server.hits["/v1/audio-features/"] == 3  # batches of 100
        assert server.hits["/v1/artists/"] == 3  # 120 artists, batches of 50
    assert (summary.listed, summary.with_features, summary.with_audio) == (230, 230, 1)
    assert summary.skipped == {"no audio": 229}
