"""The OpenAPI schema FastAPI generates: the endpoints and shapes clients rely on, and a bounded
property-based run of every operation (schemathesis) against a real server: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lightning_module.library.song_index import SongIndex
from tests.lightning_module.library.tiny_index import write_tiny_index
from tests.lightning_module.serving.conftest import ThreadServer, make_service

schemathesis = pytest.importorskip("schemathesis", reason="the dev extra is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402


@pytest.fixture(scope="module")
def fuzzed(trained_checkpoint, base_tagger, tmp_path_factory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("fuzzed")
    write_tiny_index(tmp / "music", tmp / "library.index", 6)  # for /v1/similar and /v1/path
    service = make_service(
        trained_checkpoint,
        tmp,
        base_tagger,
        max_upload_bytes=1_000_000,
        songs=SongIndex(tmp / "library.index", tmp / "music"),
    )
    (tmp / "music" / "a.wav").write_bytes(b"not audio")
    with ThreadServer(service) as running:
        yield running


def test_openapi_schema(fuzzed) -> None:
    with fuzzed.client() as client:
        schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {
        "/healthz",
        "/v1/model",
        "/v1/tag",
        "/v1/tag-path",
        "/v1/similar",
        "/v1/path",
    }
    walk = {p["name"]: p for p in paths["/v1/path"]["get"]["parameters"]}
    assert set(walk) == {"from", "to", "count"} and walk["count"]["schema"]["minimum"] == 2
    for code in ("401", "403", "404", "422", "503"):
        assert code in paths["/v1/similar"]["get"]["responses"], code
    tag = paths["/v1/tag"]["post"]
    upload = tag["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file"] and upload["properties"]["file"]["format"] == "binary"
    params = {p["name"]: p for p in tag["parameters"]}
    assert set(params) == {"timeline", "with_clip", "top", "offset", "duration"}
    assert params["top"]["schema"]["minimum"] == 1
    for code in ("200", "413", "415", "422", "503", "504"):
        assert code in tag["responses"], code
    assert "403" in paths["/v1/tag-path"]["post"]["responses"]
    body = paths["/v1/tag-path"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/TagPathRequest")
    prediction = schema["components"]["schemas"]["Prediction"]
    assert {"path", "duration", "windows", "genre", "mood", "features", "tags", "start"} <= set(
        prediction["properties"]
    )
    both = schema["components"]["schemas"]["TimelineWithClip"]
    assert set(both["required"]) == {"clip", "timeline"}
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/v1/model"),
        ("POST", "/v1/tag"),
        ("POST", "/v1/tag-path"),
        ("GET", "/v1/similar"),
        ("GET", "/v1/path"),
    ],
)
def test_no_server_errors(fuzzed, method: str, path: str) -> None:
    """Schemathesis cases from the live schema, valid and invalid ones (wrong types, missing
    fields, random multipart bodies, odd query values), 25 per operation."""
    operation = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case) -> None:
        case.call_and_validate(checks=[not_a_server_error], timeout=30)

    run()
