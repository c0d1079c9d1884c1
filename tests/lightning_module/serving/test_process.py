"""``scripts/serve.py`` as users run it, in its own process: the token from the environment,
SIGTERM finishing the request in progress, the JSON access log (no tokens, no query strings);
its options (numbers out of range are argparse errors)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from scripts.serve import parse_args
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


@pytest.mark.parametrize(
    "option",
    [
        ("--batch-size", "0"),
        ("--batch-size", "-3"),
        ("--max-batch", "0"),
        ("--max-concurrent", "0"),
        ("--timeout", "0"),
        ("--timeout", "nan"),
        ("--max-seconds", "-1"),
        ("--max-seconds", "inf"),
        ("--max-upload-mb", "0"),
        ("--max-wait-ms", "-1"),
        ("--graceful-seconds", "-1"),
        ("--port", "70000"),
    ],
)
def test_serve_refuses_numbers_out_of_range(option, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(list(option))
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2
    assert ": error: " in err[-1] and option[0] in err[-1], err  # one line after the usage


def test_serve_accepts_zero_waits_and_names_the_default_model(capsys):
    args = parse_args(["--max-wait-ms", "0", "--graceful-seconds", "0", "--port", "0"])
    assert (args.max_wait_ms, args.graceful_seconds, args.port) == (0.0, 0.0, 0)
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: the shipped model (lightning_module/shipped/)" in help_text
