"""One shape for every refusal: a JSON object ``{"detail": "<one line>"}``.

FastAPI and Starlette answer some errors in their own shapes (a list of validation errors, a
``text/plain`` 500); the handlers here turn each into the one JSON line the docs promise, so a
client needs a single error path: ours (:class:`HTTPError`), unusable audio (``AudioError``),
routing (404, 405), request validation (422, flattened into one line naming the field), and any
unexpected exception (500, without a traceback: that goes to the server's log only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from datamodules.audio import AudioError
from lightning_module.serving.limits import HTTPError
from lightning_module.serving.service import TooLongError, UnsupportedAudioError

#: Longest ``detail`` sent, characters: a request with hundreds of invalid fields still gets a
#: line, not a page.
MAX_DETAIL_CHARS = 500

#: How each part of a request is named in a validation message.
_WHERE = {
    "query": "query parameter",
    "body": "body field",
    "header": "header",
    "path": "path parameter",
    "cookie": "cookie",
}


def one_line(text: str) -> str:
    """``text`` on one line (newlines folded into spaces), at most :data:`MAX_DETAIL_CHARS`."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_DETAIL_CHARS else line[: MAX_DETAIL_CHARS - 1] + "…"


def refusal(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error response: ``{"detail": "<one line>"}`` with ``status``."""
    return JSONResponse({"detail": one_line(detail)}, status, headers=dict(headers or {}))


def validation_line(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's list of validation errors as one line naming each field:
    ``query parameter 'top': Input should be greater than or equal to 1``."""
    parts = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        msg = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":  # its loc is a character position, not a field
            reason = (error.get("ctx") or {}).get("error")
            parts.append(f"request body: not valid JSON ({reason})" if reason else msg)
            continue
        if not loc:
            parts.append(msg)
            continue
        where = _WHERE.get(loc[0], loc[0])
        field = ".".join(loc[1:])
        if field:
            parts.append(f"{where} '{field}': {msg}")
        elif loc[0] == "body":  # the body as a whole: malformed JSON, missing body
            parts.append(f"request body: {msg}")
        else:
            parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


def _audio_status(err: AudioError) -> int:
    if isinstance(err, TooLongError):
        return 413
    if isinstance(err, UnsupportedAudioError):
        return 415
    if str(err).endswith(": file not found"):
        return 404
    return 422


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error ``app`` meets as ``{"detail": "<one line>"}``."""

    @app.exception_handler(HTTPError)
    async def _refusal(request: Request, err: HTTPError) -> JSONResponse:
        return refusal(err.status, err.detail, err.headers)

    @app.exception_handler(AudioError)
    async def _audio_error(request: Request, err: AudioError) -> JSONResponse:
        return refusal(_audio_status(err), str(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http_exception(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # 404 (no such route), 405 (with its Allow header) and any HTTPException FastAPI raises.
        return refusal(err.status_code, str(err.detail), err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return refusal(422, validation_line(err.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so uvicorn logs the traceback on the server;
        # the client gets one line and no internals.
        return refusal(500, "internal error (see the server's log)")
