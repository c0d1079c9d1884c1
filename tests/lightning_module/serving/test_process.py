"""``scripts/serve.py`` as users run it, in its own process: the token from the environment,
SIGTERM finishing the request in progress, the JSON access log (no tokens, no query strings)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from tests.conftest import write_tone
from tests.lightning_module.serving.conftest import ProcessServer, httpx, multipart


def test_sigterm_finishes_the_request_in_progress_and_logs_json(trained_checkpoint, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    token = "tok-" + os.urandom(8).hex()
    auth = {"Authorization": f"Bearer {token}"}
    body, headers = multipart("slow song.wav", write_tone(tmp_path / "t.wav", 3.0).read_bytes())
    sent_half = threading.Event()
    resume = threading.Event()

    def slow_body():
        yield body[: len(body) // 2]
        sent_half.set()
        resume.wait(30)
        yield body[len(body) // 2 :]

    server = ProcessServer(
        "--checkpoint",
        str(trained_checkpoint),
        "--temp-dir",
        str(uploads),
        "--graceful-seconds",
        "20",
        env={"AUDIOTAGGER_TOKEN": token},
    )
    with server:
        no_token = httpx.get(server.url + "/v1/model")
        model = httpx.get(server.url + "/v1/model?token=" + token, headers=auth)
        result: dict = {}

        def slow_request() -> None:
            result["response"] = httpx.post(
                server.url + "/v1/tag?top=2",
                content=slow_body(),
                headers={**headers, **auth},
                timeout=60,
            )

        thread = threading.Thread(target=slow_request)
        thread.start()
        assert sent_half.wait(30)
        time.sleep(0.5)  # the server is now inside the request, reading its body
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:
            refused = httpx.get(server.url + "/healthz", timeout=2).status_code
        except httpx.TransportError:
            refused = "refused"
        resume.set()
        thread.join(60)
        code = server.proc.wait(30)
    answer = result["response"]
    assert no_token.status_code == 401
    assert model.status_code == 200
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "slow song.wav" and len(answer.json()["genre"]) == 2
    assert refused == "refused"  # no new connections once stopping
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has finished
    assert "Application shutdown complete" in server.output()
    assert os.listdir(uploads) == []
    output = server.output()
    assert token not in output  # not in the access log, not anywhere
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    tagged = [r for r in records if r["path"] == "/v1/tag"]
    assert tagged and tagged[-1]["status"] == 200 and tagged[-1]["method"] == "POST"
    assert tagged[-1]["bytes_in"] == len(body) and tagged[-1]["bytes_out"] > 0
    assert tagged[-1]["duration_ms"] >= 500
    assert {r["status"] for r in records if r["path"] == "/v1/model"} == {200, 401}
    assert all("?" not in r["path"] for r in records)  # query strings are never logged
