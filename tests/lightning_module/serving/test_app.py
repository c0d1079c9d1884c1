"""The tagging service over real HTTP on 127.0.0.1: answers equal predict_clip's, bad input
refused with predict_clip's reason, paths kept inside the music root, limits, token, batching."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.audio import AudioError
from lightning_module.inference.output import model_notes
from tests.conftest import REPO_ROOT, write_tone
from tests.lightning_module.serving.conftest import (
    ThreadServer,
    make_service,
    multipart,
    music,
)

PREDICT = REPO_ROOT / "scripts" / "predict_clip.py"


def upload(client, name: str, data: bytes, **params):
    return client.post("/v1/tag", params=params, files={"file": (name, data)})


def without_path(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "path"}


def wait_empty(folder: Path, seconds: float = 10.0) -> list[str]:
    """Entries left in ``folder`` once its cleanup had ``seconds`` to finish."""
    deadline = time.monotonic() + seconds
    while os.listdir(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.listdir(folder)


# -- answers --------------------------------------------------------------------------------------
def test_upload_answers_what_predict_clip_json_prints(server, trained_checkpoint, tmp_path):
    clip = music(tmp_path / "night drive.mp3", seconds=7.0, genres=("rock", "jazz"))
    with server.client() as client:
        got = upload(client, clip.name, clip.read_bytes(), top=4)
    assert got.status_code == 200, got.text
    printed = subprocess.run(
        [sys.executable, str(PREDICT), str(clip), "--checkpoint", str(trained_checkpoint)]
        + ["--json", "--top", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert printed.returncode == 0, printed.stderr
    expected = json.loads(printed.stdout)
    answer = got.json()
    assert answer["path"] == "night drive.mp3"  # the upload's name, not the temp file
    assert expected["path"] == str(clip)
    assert set(answer) == set(expected)
    assert without_path(answer) == without_path(expected)
    assert wait_empty(server.service.temp_root) == []


def test_timeline_and_top_as_predict_clip(server, base_tagger, tmp_path):
    clip = music(tmp_path / "mix.wav", seconds=6.0, genres=("classical", "hiphop"))
    with server.client() as client:
        got = upload(client, "mix.wav", clip.read_bytes(), timeline="true", top=2)
        one = upload(client, "mix.wav", clip.read_bytes(), top=1)
    assert got.status_code == 200, got.text
    # what predict_clip --timeline --json --top 2 prints (same Tagger settings)
    expected = [w.to_dict(2) for w in base_tagger.timeline(clip)]
    answer = got.json()
    assert len(answer) == len(expected) > 1
    assert [w["path"] for w in answer] == ["mix.wav"] * len(answer)
    assert [without_path(w) for w in answer] == [without_path(w) for w in expected]
    assert all(len(w["genre"]) == 2 for w in answer)
    assert len(one.json()["genre"]) == 1


def test_one_upload_gives_the_clip_and_the_timeline(server, base_tagger, tmp_path):
    """What the page sends: one upload, the clip prediction exactly as without timeline
    (predict_file's average, not one derived from rounded windows) and the timeline."""
    clip = music(tmp_path / "mix.wav", seconds=6.0, genres=("classical", "hiphop"))
    data = clip.read_bytes()
    with server.client() as client:
        both = upload(client, "mix.wav", data, timeline="true", with_clip="true", top=100)
        alone = upload(client, "mix.wav", data, top=100)
        timeline = upload(client, "mix.wav", data, timeline="true", top=100)
    assert both.status_code == 200, both.text
    answer = both.json()
    assert set(answer) == {"clip", "timeline"}
    assert answer["clip"] == alone.json()
    assert answer["timeline"] == timeline.json() and len(answer["timeline"]) > 1
    expected = base_tagger.predict_file(clip).to_dict(100)
    assert without_path(answer["clip"]) == without_path(expected)


def test_offset_and_duration_slice(server, base_tagger, tmp_path):
    clip = music(tmp_path / "long.flac", seconds=8.0)
    with server.client() as client:
        got = upload(client, "long.flac", clip.read_bytes(), offset=2, duration=3)
    assert got.status_code == 200, got.text
    expected = base_tagger.predict_file(clip, 2.0, 3.0).to_dict(3)
    assert without_path(got.json()) == without_path(expected)
    assert got.json()["start"] == 2.0 and got.json()["duration"] == 3.0


def test_model_health_and_page(server):
    with server.client() as client:
        model = client.get("/v1/model").json()
        health = client.get("/healthz")
        page = client.get("/")
        js = client.get("/page.js")
        css = client.get("/page.css")
    spec = server.service.spec
    assert model["genres"] == list(spec.genre_names)
    assert model["moods"] == list(spec.mood_names)
    assert [f["name"] for f in model["features"]] == list(spec.feature_names)
    assert model["sample_rate"] == spec.sample_rate
    assert model["window_seconds"] == pytest.approx(spec.crop_seconds)
    assert model["model"] == Path(server.service.config.model).name  # a name, not a server path
    assert model["format_version"] == spec.format_version
    # the tiny test model learnt from the synthetic demo set only, and says so
    assert spec.synthetic_only and model["synthetic_only"] is True
    assert model["notes"] == model_notes(spec)
    assert any("only on the synthetic demo set" in note for note in model["notes"])
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert page.status_code == 200 and "<canvas" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    # nothing inline for that CSP to block: scripts and styles come from the page's files
    assert re.findall(r"<script\b[^>]*>", page.text) == ['<script src="page.js">']
    assert "<style" not in page.text and "style=" not in page.text
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert 'fetch("v1/tag?' in js.text and "body {" in css.text
    for text in (page.text, js.text, css.text):
        assert "http://" not in text and "https://" not in text  # no external assets


# -- bad uploads ----------------------------------------------------------------------------------
def _wav_bytes(data: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, data, sr, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _wav_header_only(channels: int = 1, rate: int = 16000) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def bad_uploads(tmp: Path) -> dict[str, bytes]:
    """20 uploads no model should tag, by the name they are sent under."""
    rng = np.random.default_rng(0)
    mp3 = music(tmp / "ok.mp3", seconds=3.0).read_bytes()
    tone = write_tone(tmp / "tone.wav", seconds=3.0).read_bytes()
    nan = np.full(16000 * 2, np.nan, dtype=np.float32)
    inf = np.full(16000 * 2, np.inf, dtype=np.float32)
    with wave.open(str(tmp / "claims_more.wav"), "wb") as w:  # header says 3 s, 0.5 s present
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((rng.standard_normal(16000 * 3) * 3000).astype("<i2").tobytes())
    claims_more = (tmp / "claims_more.wav").read_bytes()[: 44 + 16000]
    return {
        "empty.mp3": b"",
        "truncated.mp3": mp3[:700],
        "random.mp3": rng.bytes(4096),
        "random.bin": rng.bytes(4096),
        "notes.txt": b"this is not music\n" * 100,
        "page.ogg": b"<!doctype html><html><body>hello</body></html>" * 20,
        "data.flac": json.dumps({"x": list(range(500))}).encode(),
        "cover.png": b"\x89PNG\r\n\x1a\n" + rng.bytes(2048),
        "archive.wav": b"PK\x03\x04" + rng.bytes(2048),
        "silence.wav": _wav_bytes(np.zeros(16000 * 3, dtype=np.float32)),
        "blip.wav": _wav_bytes(0.3 * rng.standard_normal(3200).astype(np.float32)),  # 0.2 s
        "almost.wav": _wav_bytes(0.3 * rng.standard_normal(15000).astype(np.float32)),  # 0.94 s
        "nan.wav": _wav_bytes(nan, subtype="FLOAT"),
        "inf.wav": _wav_bytes(inf, subtype="FLOAT"),
        "header_only.wav": _wav_header_only(),
        "claims_more.wav": claims_more,
        "flac_then_garbage.flac": b"fLaC" + rng.bytes(3000),
        "ogg_then_garbage.ogg": b"OggS" + rng.bytes(3000),
        "id3_only.mp3": b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10,
        "gzip.wav": __import__("gzip").compress(tone),
    }


def test_twenty_bad_uploads_get_predict_clips_reason(server, base_tagger, tmp_path):
    cases = bad_uploads(tmp_path)
    assert len(cases) == 20
    local = tmp_path / "as_sent"
    local.mkdir()
    with server.client() as client:
        for name, data in cases.items():
            got = upload(client, name, data)
            assert got.status_code in (413, 415, 422), (name, got.status_code, got.text)
            # the reason predict_clip gives for the same bytes under the same name
            path = local / name
            path.write_bytes(data)
            with pytest.raises(AudioError) as err:
                base_tagger.predict_file(path)
            expected = str(err.value).replace(str(path), name)
            assert got.json()["detail"] == expected, name
            assert "\n" not in expected and expected.startswith(f"{name}: ")
    assert wait_empty(server.service.temp_root) == []


def test_predict_clip_prints_the_same_reasons(server, trained_checkpoint, tmp_path):
    """Folder mode of predict_clip names every unusable file with its reason: one process for
    the audio-named bad uploads, each line equal to the service's detail."""
    folder = tmp_path / "bad"
    folder.mkdir()
    cases = {
        n: d for n, d in bad_uploads(tmp_path).items() if not n.endswith((".txt", ".bin", ".png"))
    }
    for name, data in cases.items():
        (folder / name).write_bytes(data)
    printed = subprocess.run(
        [sys.executable, str(PREDICT), str(folder), "--checkpoint", str(trained_checkpoint)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    skipped = {
        line.split(": ", 1)[1].replace(f"{folder}/", "")
        for line in printed.stderr.splitlines()
        if line.startswith("skipped: ")
    }
    with server.client() as client:
        details = {upload(client, n, d).json()["detail"] for n, d in cases.items()}
    assert details == skipped


def test_wrong_extension_valid_content_is_tagged(server, tmp_path):
    wav = write_tone(tmp_path / "tone.wav", seconds=2.5).read_bytes()
    mp3 = music(tmp_path / "song.mp3", seconds=2.5).read_bytes()
    flac = write_tone(tmp_path / "tone.flac", seconds=2.5).read_bytes()
    with server.client() as client:
        for name, data in [("tone.mp3", wav), ("song.wav", mp3), ("tone.txt", flac), ("x", wav)]:
            got = upload(client, name, data)
            assert got.status_code == 200, (name, got.text)
            assert got.json()["path"] == name and got.json()["windows"] >= 1


def test_malformed_requests(server, tmp_path):
    data = write_tone(tmp_path / "t.wav").read_bytes()
    with server.client() as client:
        raw = client.post("/v1/tag", content=data, headers={"content-type": "audio/wav"})
        no_file = client.post("/v1/tag", files={"other": ("t.wav", data)})
        no_boundary = client.post(
            "/v1/tag", content=b"x", headers={"content-type": "multipart/form-data"}
        )
        body, headers = multipart("t.wav", data)
        cut = client.post("/v1/tag", content=body[: len(body) // 2], headers=headers)
        bad_top = client.post("/v1/tag?top=0", files={"file": ("t.wav", data)})
        nan_offset = client.post("/v1/tag?offset=nan", files={"file": ("t.wav", data)})
        sneaky = upload(client, "../../etc/passwd.wav", data)
    assert raw.status_code == 415
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    assert no_boundary.status_code == 400
    assert cut.status_code == 400
    assert bad_top.status_code == 422 and nan_offset.status_code == 422
    assert sneaky.status_code == 200 and sneaky.json()["path"] == "passwd.wav"
    assert wait_empty(server.service.temp_root) == []


# -- paths below the music root -------------------------------------------------------------------
def test_tag_path_inside_root_only(server, base_tagger, tmp_path):
    root = server.service.music_root
    (root / "albums").mkdir(exist_ok=True)
    inside = music(root / "albums" / "song.wav", seconds=3.0)
    secret = music(tmp_path / "secret.wav", seconds=3.0)  # outside the root
    (root / "escape.wav").unlink(missing_ok=True)
    (root / "escape.wav").symlink_to(secret)
    (root / "linked").unlink(missing_ok=True)
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    (root / "ok_link.wav").unlink(missing_ok=True)
    (root / "ok_link.wav").symlink_to(inside)  # a symlink staying inside is fine
    with server.client() as client:

        def ask(path: str, **params):
            return client.post("/v1/tag-path", json={"path": path}, params=params)

        ok = ask("albums/song.wav")
        absolute = ask(str(inside))
        via_link = ask("ok_link.wav")
        refused = {
            p: ask(p)
            for p in [
                "../secret.wav",
                "albums/../../secret.wav",
                str(secret),
                "/etc/passwd",
                "escape.wav",
                "linked/secret.wav",
                "albums/song.wav\x00.txt",
                "",
            ]
        }
        missing = ask("albums/nothing.wav")
        folder = ask("albums")
        extra = client.post("/v1/tag-path", json={"path": "albums/song.wav", "x": 1})
    assert ok.status_code == 200, ok.text
    assert ok.json()["path"] == "albums/song.wav"
    assert without_path(ok.json()) == without_path(base_tagger.predict_file(inside).to_dict(3))
    assert absolute.status_code == 200 and via_link.status_code == 200
    for path, got in refused.items():
        assert got.status_code == 403, (path, got.status_code, got.text)
        assert str(root) not in got.json()["detail"]  # never the server's own path
    assert missing.status_code == 404
    assert missing.json()["detail"] == "albums/nothing.wav: file not found"
    assert folder.status_code == 422 and folder.json()["detail"] == "albums: not a regular file"
    assert extra.status_code == 422


def test_tag_path_off_without_music_root(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(trained_checkpoint, tmp_path, base_tagger)
    service.music_root = None
    with ThreadServer(service) as running, running.client() as client:
        got = client.post("/v1/tag-path", json={"path": "x.wav"})
        big = client.post("/v1/tag-path", content=b"{" + b" " * 100_000 + b"}")
    assert got.status_code == 403 and "--music-root" in got.json()["detail"]
    assert big.status_code == 413


# -- limits ---------------------------------------------------------------------------------------
def test_size_and_duration_caps(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(
        trained_checkpoint, tmp_path, base_tagger, max_upload_bytes=200_000, max_seconds=5.0
    )
    long = write_tone(tmp_path / "long.wav", seconds=8.0, sr=8000).read_bytes()  # 128 kB
    huge = np.random.default_rng(0).bytes(3_000_000)

    def chunks():
        body, _ = multipart("huge.wav", huge)
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    with ThreadServer(service) as running, running.client() as client:
        over = upload(client, "huge.wav", huge)
        _, headers = multipart("huge.wav", b"")
        streamed = client.post("/v1/tag", content=chunks(), headers=headers)  # no Content-Length
        too_long = upload(client, "long.wav", long)
        slice_ok = upload(client, "long.wav", long, duration=4)
        late_slice = upload(client, "long.wav", long, offset=4)
        model = client.get("/v1/model").json()
    assert over.status_code == 413 and "upload too large" in over.json()["detail"]
    assert streamed.status_code == 413 and "huge.wav: upload too large" in streamed.json()["detail"]
    assert too_long.status_code == 413
    assert too_long.json()["detail"].startswith("long.wav: too long to tag here (8.0 s > 5 s")
    assert slice_ok.status_code == 200 and slice_ok.json()["duration"] == 4.0
    assert late_slice.status_code == 200 and late_slice.json()["start"] == 4.0
    assert model["limits"]["max_upload_bytes"] == 200_000
    assert os.listdir(tmp_path / "uploads") == []


def test_timeout_is_504_and_cleans_up(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(trained_checkpoint, tmp_path, base_tagger, request_timeout=0.02)
    clip = write_tone(tmp_path / "minute.wav", seconds=60.0, sr=48000, channels=2).read_bytes()
    with ThreadServer(service) as running, running.client() as client:
        got = upload(client, "minute.wav", clip)
        assert got.status_code == 504, got.text
        assert got.json()["detail"] == "upload: not tagged within 0.02 s (the timeout)"
        assert wait_empty(tmp_path / "uploads") == []
        deadline = time.monotonic() + 10
        while service.gate.held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.gate.held == 0


def test_full_server_answers_503_with_retry_after(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(trained_checkpoint, tmp_path, base_tagger, max_concurrent=1)
    body, headers = multipart("slow.wav", write_tone(tmp_path / "s.wav").read_bytes())
    release = threading.Event()

    def slow_body():
        yield body[:100]
        release.wait(30)
        yield body[100:]

    with (
        ThreadServer(service) as running,
        running.client() as client,
        ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(client.post, "/v1/tag", content=slow_body(), headers=headers)
        deadline = time.monotonic() + 10
        while service.gate.held == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        with running.client() as other:
            busy = upload(other, "other.wav", body)
            health = other.get("/healthz")
        release.set()
        done = first.result(60)
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert done.status_code == 200, done.text


def test_token_required_when_set(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(trained_checkpoint, tmp_path, base_tagger, token="s3cret-token")
    data = write_tone(tmp_path / "t.wav").read_bytes()
    with ThreadServer(service) as running, running.client() as client:
        none = upload(client, "t.wav", data)
        wrong = client.get("/v1/model", headers={"Authorization": "Bearer s3cret-tokeX"})
        basic = client.get("/v1/model", headers={"Authorization": "Basic s3cret-token"})
        good = client.post(
            "/v1/tag",
            files={"file": ("t.wav", data)},
            headers={"Authorization": "Bearer s3cret-token"},
        )
        health = client.get("/healthz")
        page = client.get("/")
    assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and basic.status_code == 401
    assert good.status_code == 200, good.text
    assert health.status_code == 200 and page.status_code == 200
    assert "s3cret" not in repr(service.config)


def test_no_token_no_header_needed(server, tmp_path):
    with server.client() as client:
        assert client.get("/v1/model").status_code == 200


# -- throughput -----------------------------------------------------------------------------------
def test_sixteen_concurrent_requests_share_forward_passes(
    trained_checkpoint, base_tagger, tmp_path
):
    service = make_service(trained_checkpoint, tmp_path, base_tagger, max_wait=0.25)
    clips = [
        music(tmp_path / f"c{i}.wav", seconds=6.0, genres=(g,))
        for i, g in enumerate(["rock", "jazz", "folk", "classical"] * 4)
    ]
    expected = {c.name: base_tagger.predict_file(c).to_dict(None) for c in clips}
    with ThreadServer(service) as running:
        before = service.batcher.forward_passes

        def one(clip: Path):
            with running.client() as client:
                return upload(client, clip.name, clip.read_bytes(), top=1000)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, clips))
        passes = service.batcher.forward_passes - before
    assert [a.status_code for a in answers] == [200] * 16
    windows = sum(a.json()["windows"] for a in answers)
    assert passes < 16, f"{passes} forward passes for 16 requests ({windows} windows)"
    for clip, answer in zip(clips, answers, strict=True):
        got = answer.json()
        want = expected[clip.name]
        # batched with other requests' windows: the same numbers up to float rounding
        assert got["windows"] == want["windows"]
        for task in ("genre", "mood"):
            probabilities = {g["label"]: g["probability"] for g in got[task]}
            for entry in want[task]:
                assert math.isclose(
                    probabilities[entry["label"]], entry["probability"], abs_tol=2e-4
                )
        for key, value in want["features"].items():
            assert math.isclose(got["features"][key], value, abs_tol=2e-4), key
