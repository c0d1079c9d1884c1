"""A structured access log: one JSON line per HTTP request.

Each line has the time, method, path (never the query string, which may carry secrets), status,
duration in milliseconds, bytes received and sent, and the client address. Headers (hence the
``Authorization`` token) and bodies (hence file contents) are never read into the log. It is a
plain ASGI middleware, so it also sees requests that fail before reaching a route (401, 413).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

#: The logger the lines go to (``run_server`` sends it to stderr, one JSON object per line).
ACCESS_LOGGER = "audiotagger.access"


class AccessLogMiddleware:
    """Wrap an ASGI app; log every HTTP request it answers to :data:`ACCESS_LOGGER`."""

    def __init__(self, app: Any, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500, "in": 0, "out": 0}  # 500 if the app dies before answering

        async def counting_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            client = scope.get("client")
            record = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": seen["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "bytes_in": seen["in"],
                "bytes_out": seen["out"],
                "client": client[0] if client else None,
            }
            self.logger.info(json.dumps(record))


def setup_access_log(stream: Any = None, level: int = logging.INFO) -> logging.Logger:
    """Send :data:`ACCESS_LOGGER` to ``stream`` (default stderr), one bare JSON line each."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
