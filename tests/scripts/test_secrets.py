"""Spotify credentials never reach any output: a real build (scripts/build_dataset.py, real
spotipy against a local stand-in of the Web API) and a real training run, both with the fake
credentials in the environment, then every byte of every file they wrote, and their console
output, is searched for the credentials (plain, base64 as in the Basic auth header, and the token).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, run_training, write_tone
from tests.datamodules.sources.http_server import LocalServer
from tests.datamodules.sources.spotify_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    FakeSpotify,
    FakeTrack,
    spotify_config,
)

WRONG_SECRET = "wrong-secret-4242-do-not-log"
SECRETS = [
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    WRONG_SECRET,
    base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
    base64.b64encode(f"{CLIENT_ID}:{WRONG_SECRET}".encode()).decode(),
]


def leaks(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data]


def scan(*roots: Path) -> list[Path]:
    """Every file under ``roots``; fails on the first one holding a credential."""
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    for path in files:
        assert not leaks(path.read_bytes()), f"{path} holds {leaks(path.read_bytes())}"
    return files


def tracks() -> list[FakeTrack]:
    return [
        FakeTrack(
            id=f"sec{i:02d}TrAcK",
            name=f"Song {i}",
            artist_id=f"a{i % 3}",
            artist=f"Artist {i % 3}",
            isrc=f"USSS1{i:07d}",
            features={"danceability": 0.1 * i, "energy": 0.5, "tempo": 100.0 + i},
        )
        for i in range(1, 9)
    ]


def build(server: LocalServer, out: Path, config: dict, env: dict) -> subprocess.CompletedProcess:
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump({"source": "spotify", **config}))
    return subprocess.run(
        [sys.executable, "scripts/build_dataset.py", str(path), "--out", str(out)],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        timeout=180,
    )


def test_credentials_never_reach_outputs_logs_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    mp3 = write_tone(tmp_path / "tone.mp3", seconds=3.0, sr=16000).read_bytes()
    env = {**os.environ, "SPOTIPY_CLIENT_ID": CLIENT_ID, "SPOTIPY_CLIENT_SECRET": CLIENT_SECRET}
    playlists = {"happyP": [t.id for t in tracks()[:4]], "sadP": [t.id for t in tracks()[4:]]}
    with LocalServer() as server:
        FakeSpotify(server, tracks(), playlists, {"a0": ["rock"], "a1": ["pop"]}, mp3)
        config = spotify_config(
            server,
            moods={"happy": ["happyP"], "sad": ["sadP"]},
            split={"stratify": "mood", "val_fraction": 0.25, "test_fraction": 0.0},
        )
        built = build(server, tmp_path / "spotify", config, env)
        assert built.returncode == 0, built.stderr.decode()[-2000:]
        # the Basic auth header really carried the credentials, so there was something to leak
        sent = [headers for _, path, headers, _ in server.requests if path.endswith("/token")]
        assert sent and any(SECRETS[4] in h.get("Authorization", "") for h in sent)
        refused = build(
            server,
            tmp_path / "refused",
            config,
            {**env, "SPOTIPY_CLIENT_SECRET": WRONG_SECRET},
        )
    assert refused.returncode != 0 and b"credentials" in refused.stderr
    for output in (built.stdout, built.stderr, refused.stdout, refused.stderr):
        assert not leaks(output), output.decode()[-2000:]

    monkeypatch.setenv("SPOTIPY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", CLIENT_SECRET)
    run = tmp_path / "run"
    cli = run_training(
        run,
        tmp_path / "spotify" / "manifest.csv",
        "--trainer.max_epochs=1",
        "--trainer.log_every_n_steps=1",
    )
    assert cli.trainer.global_step > 0
    out, err = capfd.readouterr()
    assert not leaks(out.encode() + err.encode())

    files = scan(tmp_path / "spotify", tmp_path / "refused", run)
    names = " ".join(p.name for p in files)
    # the scan covered every kind of output: manifest, audio, cache, config, TensorBoard, ckpt
    for kind in ("manifest.csv", ".mp3", ".pcm", "config.yaml", "tfevents", "last.ckpt"):
        assert kind in names, f"no {kind} among {names}"
