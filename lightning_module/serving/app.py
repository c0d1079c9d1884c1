"""HTTP in front of :class:`~.service.TaggingService`: a FastAPI app and the uvicorn runner.

Endpoints (``/v1`` ones need ``Authorization: Bearer <token>`` when the server has a token):

* ``POST /v1/tag``: a multipart upload (field ``file``) → ``ClipPrediction.to_dict(top)``, the
  JSON ``predict_clip --json`` prints, ``path`` being the upload's name; ``?timeline=true`` gives
  one per window, ``&with_clip=true`` both (``{"clip": ..., "timeline": [...]}``, one upload);
  ``?top=N``, ``?offset=S&duration=S`` as ``predict_clip``.
* ``POST /v1/tag-path``: ``{"path": ...}`` of a file below ``--music-root`` (403 outside it).
* ``GET /v1/model``: labels, features, input settings, limits, notes. ``GET /healthz``.
* ``GET /``: a page to try it (``static/index.html`` with its ``page.js`` and ``page.css``: no
  inline script or style, so its Content-Security-Policy needs no ``'unsafe-inline'``);
  ``GET /openapi.json``.

Every refusal is JSON ``{"detail": "<one line>"}`` (``errors.py``): 400 foreign ``Host`` or
malformed body, 401 token, 403 path outside the root, 404 no such file or route, 405, 413 upload
or audio too large, 415 not multipart / not audio, 422 unusable audio (the ``AudioError`` line
``predict_clip`` prints, naming the upload) or invalid parameters, 503 busy (with
``Retry-After``), 504 over the per-request timeout, 500 an unexpected error.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from lightning_module.serving.accesslog import AccessLogMiddleware, setup_access_log
from lightning_module.serving.errors import install_error_handlers
from lightning_module.serving.limits import HTTPError, resolve_inside
from lightning_module.serving.middleware import BodyLimit, HostCheck, SecurityHeaders
from lightning_module.serving.service import ServiceConfig, TaggingService
from lightning_module.serving.upload import FILE_FIELD, receive_upload

log = logging.getLogger("audiotagger.serve")

#: Largest body of any request but an upload (``/v1/tag-path``'s JSON), bytes.
MAX_JSON_BYTES = 64 * 1024
#: Hosts a loopback server answers to: a web page that rebinds its own domain to 127.0.0.1
#: must not reach the service through the visitor's browser.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: The page's Content-Security-Policy: script and style only from this origin's files (the page
#: has no inline script, style element or style attribute), requests only to this origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The page's files besides ``index.html`` (package data in ``static/``), with their types.
PAGE_ASSETS = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}


# -- response and request shapes (documentation: the JSON itself is ClipPrediction.to_dict) ------
class Label(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    """``ClipPrediction.to_dict(top)``: what ``predict_clip --json`` prints."""

    model_config = ConfigDict(extra="allow")
    path: str | None
    duration: float
    windows: int
    genre: list[Label]
    mood: list[Label]
    features: dict[str, float]
    tags: list[Label]
    start: float
    genre_tags: dict[str, float] | None = Field(
        None, description="every genre tag's probability; only for a model with that head"
    )
    key: str | None = Field(None, description="tonic (C, C#, D, Eb, ...); with a key head")
    mode: str | None = Field(None, description="major or minor; with a key head")
    key_confidence: float | None = Field(
        None, description="the key's probability, windows averaged; with a key head"
    )
    camelot: str | None = Field(None, description="Camelot wheel code, e.g. 8A; with a key head")


class TimelineWithClip(BaseModel):
    """``?timeline=true&with_clip=true``: the clip prediction and the timeline of one upload."""

    clip: Prediction = Field(..., description="what the same request without timeline answers")
    timeline: list[Prediction] = Field(..., description="one result per window, in time order")


class ErrorDetail(BaseModel):
    detail: str


class TagPathRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        ..., max_length=4096, description="a file below the server's music root (or relative)"
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorDetail} for code in codes}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "the audio file (any format predict_clip reads)",
                        }
                    },
                }
            }
        },
    }
}


class TagOptions:
    """Query parameters shared by both tagging endpoints (as ``predict_clip``'s options)."""

    def __init__(
        self,
        timeline: Annotated[bool, Query(description="one result per window")] = False,
        with_clip: Annotated[
            bool,
            Query(
                description="with timeline: answer {clip, timeline}, the clip prediction "
                "(exactly the answer without timeline) and the timeline of one upload"
            ),
        ] = False,
        top: Annotated[int, Query(ge=1, le=1000, description="classes listed per task")] = 3,
        offset: Annotated[
            float, Query(ge=0, le=1e7, allow_inf_nan=False, description="start, seconds")
        ] = 0.0,
        duration: Annotated[
            float | None,
            Query(gt=0, le=1e7, allow_inf_nan=False, description="seconds to tag (default: all)"),
        ] = None,
    ) -> None:
        if with_clip and not timeline:  # the answer without timeline is the clip already
            raise HTTPError(422, "with_clip=true needs timeline=true")
        self.timeline = timeline
        self.with_clip = with_clip
        self.top = top
        self.offset = offset
        self.duration = duration


_bearer = HTTPBearer(auto_error=False, description="needed when the server has a token")


def _check_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = request.app.state.service.config.token
    if not token:
        return
    given = credentials.credentials if credentials else ""
    # compare_digest: the time taken does not tell how much of a guess was right.
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        raise HTTPError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


Authorized = Annotated[None, Depends(_check_token)]
Options = Annotated[TagOptions, Depends()]


# -- one tagging request: slot, folder, deadline --------------------------------------------------
class _Request:
    """A tagging request's hold on the service: a concurrency slot, maybe a temp folder.

    Until :meth:`run` hands them to the worker, leaving the ``async with`` gives them back; after
    that the worker's completion does, so a request answered with 504 keeps its slot and folder
    until its work has really stopped.
    """

    def __init__(self, service: TaggingService) -> None:
        self.service = service
        self.folder: Path | None = None
        self.handed_over = False
        self.until = time.monotonic() + service.limits.request_timeout

    async def __aenter__(self) -> _Request:
        if not self.service.gate.try_enter():
            limit = self.service.limits.max_concurrent
            raise HTTPError(
                503,
                f"busy: {limit} request(s) in progress (the server's limit); retry shortly",
                {"Retry-After": str(self.service.limits.retry_after)},
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.handed_over:
            self.release()

    def release(self) -> None:
        self.service.remove_folder(self.folder)
        self.service.gate.leave()

    def new_folder(self) -> Path:
        self.folder = self.service.new_folder()
        return self.folder

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        future = self.service.pool.submit(fn, *args, **kwargs)
        self.handed_over = True
        future.add_done_callback(lambda _: self.release())
        return await asyncio.wrap_future(future)


async def _within_deadline(request: _Request, shown: str, work: Any) -> Any:
    left = request.until - time.monotonic()
    try:
        async with asyncio.timeout(left):
            return await work
    except TimeoutError:  # asyncio's, or DeadlineExceeded from the worker
        seconds = request.service.limits.request_timeout
        raise HTTPError(504, f"{shown}: not tagged within {seconds:g} s (the timeout)") from None


# -- the app --------------------------------------------------------------------------------------
def create_app(service: TaggingService, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The FastAPI app serving ``service`` (closed when the app shuts down).

    Args:
        allowed_hosts: ``Host`` header values accepted (default: the loopback names; ``["*"]``
            for any, e.g. behind a reverse proxy).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="audiotagger",
        summary="Tag music from audio alone: genre, mood, audio features.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN; the page is offline
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    static = resources.files("lightning_module.serving").joinpath("static")
    page = static.joinpath("index.html").read_text()
    assets = {name: static.joinpath(name).read_bytes() for name in PAGE_ASSETS}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})

    def asset_route(name: str) -> None:
        async def asset() -> Response:
            return Response(assets[name], media_type=PAGE_ASSETS[name])

        app.add_api_route("/" + name, asset, methods=["GET"], include_in_schema=False)

    for name in PAGE_ASSETS:
        asset_route(name)

    @app.get("/healthz", summary="Liveness: the model is loaded; work done so far")
    async def healthz() -> dict[str, Any]:
        batcher = service.batcher
        return {
            "status": "ok",
            "in_progress": service.gate.held,
            "forward_passes": batcher.forward_passes,
            "windows_run": batcher.windows_run,
        }

    @app.get("/v1/model", summary="What the loaded model knows", responses=_errors(401))
    async def model(_: Authorized) -> dict[str, Any]:
        return service.model_info()

    @app.post(
        "/v1/tag",
        summary="Tag an uploaded audio file",
        openapi_extra=UPLOAD_BODY,
        responses={
            200: {"model": Prediction | list[Prediction] | TimelineWithClip},
            **_errors(400, 401, 413, 415, 422, 503, 504),
        },
    )
    async def tag(request: Request, options: Options, _: Authorized) -> Any:
        async with _Request(service) as held:

            async def work() -> Any:
                upload = await receive_upload(
                    request.headers.get("content-type", ""),
                    request.headers.get("content-length"),
                    request.stream(),
                    held.new_folder(),
                    service.limits.max_upload_bytes,
                )
                return await held.run(
                    service.tag, upload.path, upload.name, **_kwargs(options, held)
                )

            return await _within_deadline(held, "upload", work())

    @app.post(
        "/v1/tag-path",
        summary="Tag a file below the server's music root",
        responses={
            200: {"model": Prediction | list[Prediction] | TimelineWithClip},
            **_errors(401, 403, 404, 413, 415, 422, 503, 504),
        },
    )
    async def tag_path(body: TagPathRequest, options: Options, _: Authorized) -> Any:
        if service.music_root is None:
            raise HTTPError(403, "tag-path is off: start the server with --music-root")
        path = resolve_inside(service.music_root, body.path)
        async with _Request(service) as held:
            work = held.run(service.tag, path, body.path, **_kwargs(options, held))
            return await _within_deadline(held, body.path, work)

    app.add_middleware(BodyLimit, max_bytes=MAX_JSON_BYTES, exempt=("/v1/tag",))
    app.add_middleware(HostCheck, allowed_hosts=allowed_hosts or list(LOOPBACK_HOSTS))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLogMiddleware)
    return app


def _kwargs(options: TagOptions, held: _Request) -> dict[str, Any]:
    return {
        "timeline": options.timeline,
        "with_clip": options.with_clip,
        "top": options.top,
        "offset": options.offset,
        "duration": options.duration,
        "until": held.until,
    }


# -- running it -----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_server(
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    graceful_seconds: float = 30.0,
    allowed_hosts: list[str] | None = None,
    log_level: str = "info",
) -> uvicorn.Server:
    """Load the model and return a uvicorn server for it (``.run()`` serves until SIGTERM/SIGINT,
    then finishes requests in progress for up to ``graceful_seconds``)."""
    service = TaggingService(config)
    hosts = allowed_hosts or (list(LOOPBACK_HOSTS) if is_loopback(host) else ["*"])
    app = create_app(service, allowed_hosts=hosts)
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # ours (accesslog.py) is JSON and leaves out query strings
        timeout_graceful_shutdown=graceful_seconds,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
    )
    return uvicorn.Server(uv_config)


def run_server(
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    graceful_seconds: float = 30.0,
    allowed_hosts: list[str] | None = None,
    log_level: str = "info",
) -> int:
    """Serve ``config``'s model on ``host:port`` until stopped; access log as JSON on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setup_access_log()
    if not is_loopback(host) and not config.token:
        log.warning(
            "warning: serving on %s without a token: anyone who can reach it can use it "
            "(set AUDIOTAGGER_TOKEN)",
            host,
        )
    server = build_server(config, host, port, graceful_seconds, allowed_hosts, log_level)
    log.info("audiotagger: %s on http://%s:%d/", Path(config.model).name, host, port)
    server.run()
    return 0
