"""One error shape: every refusal a real server gives a real client is a JSON object
``{"detail": "<one line>"}``, whoever raised it (our checks, Starlette's routing, FastAPI's
validation, the ``Host`` check, the body caps, an unexpected exception)."""

from __future__ import annotations

import httpx
import pytest

from lightning_module.serving.errors import validation_line
from tests.conftest import write_tone
from tests.lightning_module.serving.conftest import ThreadServer, make_service


def refusal(response: httpx.Response, status: int) -> str:
    """The response's one-line ``detail``, after checking it is the one error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail, body
    assert "\n" not in response.text and "Traceback" not in response.text
    return detail


def test_foreign_host_header_is_a_json_400(server):
    with server.client() as client:
        evil = client.get("/v1/model", headers={"host": "evil.example:8000"})
        evil_page = client.get("/", headers={"host": "evil.example"})
        evil_upload = client.post(
            "/v1/tag", headers={"host": "127.0.0.1.evil.example"}, files={"file": ("a", b"x")}
        )
        upper = client.get("/v1/model", headers={"host": "LOCALHOST:8000"})
        ipv6 = client.get("/v1/model", headers={"host": "[::1]:8000"})
    # a rebinding web page cannot reach the local service through a visitor's browser
    assert "Host header" in refusal(evil, 400)
    refusal(evil_page, 400)
    refusal(evil_upload, 400)
    assert upper.status_code == 200  # host names are case-insensitive
    assert ipv6.status_code == 200, ipv6.text  # the IPv6 loopback with a port


def test_unknown_route_and_wrong_method(server):
    with server.client() as client:
        missing = client.get("/v1/nothing")
        wrong = client.get("/v1/tag")
        delete = client.delete("/v1/model")
    assert refusal(missing, 404) == "Not Found"
    assert refusal(wrong, 405) == "Method Not Allowed"
    assert "POST" in wrong.headers["allow"]
    refusal(delete, 405)


def test_validation_errors_are_one_line_naming_the_field(server, tmp_path):
    data = write_tone(tmp_path / "t.wav").read_bytes()
    with server.client() as client:
        top = client.post("/v1/tag?top=0", files={"file": ("t.wav", data)})
        offset = client.post("/v1/tag?offset=nan", files={"file": ("t.wav", data)})
        both = client.post("/v1/tag?top=x&duration=-1", files={"file": ("t.wav", data)})
        flag = client.post("/v1/tag?timeline=maybe", files={"file": ("t.wav", data)})
        clip_alone = client.post("/v1/tag?with_clip=true", files={"file": ("t.wav", data)})
        no_path = client.post("/v1/tag-path", json={})
        extra = client.post("/v1/tag-path", json={"path": "a.wav", "mode": "x"})
        not_json = client.post(
            "/v1/tag-path", content=b"{not json", headers={"content-type": "application/json"}
        )
        no_file = client.post("/v1/tag", files={"other": ("t.wav", data)})
    assert refusal(top, 422).startswith("query parameter 'top': ")
    assert refusal(offset, 422).startswith("query parameter 'offset': ")
    detail = refusal(both, 422)
    assert "query parameter 'top'" in detail and "query parameter 'duration'" in detail
    assert refusal(flag, 422).startswith("query parameter 'timeline': ")
    assert refusal(clip_alone, 422) == "with_clip=true needs timeline=true"
    assert refusal(no_path, 422) == "body field 'path': Field required"
    assert refusal(extra, 422).startswith("body field 'mode': ")
    assert refusal(not_json, 422).startswith("request body: not valid JSON (")
    assert "'file'" in refusal(no_file, 422)


def test_size_refusals_are_json(trained_checkpoint, base_tagger, tmp_path):
    service = make_service(trained_checkpoint, tmp_path, base_tagger, max_upload_bytes=10_000)
    big = write_tone(tmp_path / "big.wav", seconds=3.0).read_bytes()

    def chunks():
        yield b'{"path": "' + b"a" * 70_000
        yield b'"}'

    with ThreadServer(service) as running, running.client() as client:
        upload = client.post("/v1/tag", files={"file": ("big.wav", big)})
        declared = client.post(
            "/v1/tag-path",
            content=b"{}" + b" " * 70_000,
            headers={"content-type": "application/json"},
        )
        streamed = client.post(
            "/v1/tag-path", content=chunks(), headers={"content-type": "application/json"}
        )
        not_multipart = client.post("/v1/tag", content=big, headers={"content-type": "audio/wav"})
        bad_multipart = client.post(
            "/v1/tag", content=b"x", headers={"content-type": "multipart/form-data"}
        )
    assert "upload too large" in refusal(upload, 413)
    assert refusal(declared, 413) == "request body too large"
    assert refusal(streamed, 413) == "request body too large"
    refusal(not_multipart, 415)
    refusal(bad_multipart, 400)


def test_an_unexpected_error_is_a_json_500_without_internals(
    trained_checkpoint, base_tagger, tmp_path
):
    service = make_service(trained_checkpoint, tmp_path, base_tagger)
    with ThreadServer(service) as running:

        async def broken() -> None:  # a route with a bug, as a future endpoint might have
            raise RuntimeError("secret internal state /srv/models/x")

        running.app.add_api_route("/broken", broken)
        with running.client() as client:
            got = client.get("/broken")
    detail = refusal(got, 500)
    assert "secret" not in detail and "RuntimeError" not in detail


@pytest.mark.parametrize(
    ("errors", "line"),
    [
        (
            [{"loc": ("query", "top"), "msg": "Input should be greater than or equal to 1"}],
            "query parameter 'top': Input should be greater than or equal to 1",
        ),
        (
            [{"loc": ("body", "a", 0), "msg": "bad"}, {"loc": ("header", "x"), "msg": "no\nway"}],
            "body field 'a.0': bad; header 'x': no\nway",
        ),
        ([{"loc": ("body",), "msg": "Field required"}], "request body: Field required"),
        (
            [
                {
                    "loc": ("body", 1),
                    "msg": "JSON decode error",
                    "type": "json_invalid",
                    "ctx": {"error": "Expecting value"},
                }
            ],
            "request body: not valid JSON (Expecting value)",
        ),
        ([], "invalid request"),
    ],
)
def test_validation_line(errors, line):
    assert validation_line(errors) == line
