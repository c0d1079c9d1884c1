"""A real HTTP server on 127.0.0.1 for source tests: routes are plain functions, hits are counted.

A route gets the request handler and the parsed query and writes the response itself, so tests can
misbehave like real servers do: 429 with Retry-After, 500 then success, a connection dropped
half-way through a body that promised more bytes.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Route = Callable[[BaseHTTPRequestHandler, dict[str, list[str]]], None]


def send(handler, status=200, body=b"", content_type="application/octet-stream", headers=None):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def send_json(handler, data, status=200, headers=None):
    send(handler, status, json.dumps(data).encode(), "application/json", headers)


def file_route(body: bytes) -> Route:
    return lambda handler, query: send(handler, 200, body, "audio/mpeg")


def failing_first(times: int, failure: Route, then: Route) -> Route:
    """``failure`` for the first ``times`` requests, ``then`` afterwards."""
    count = {"n": 0}

    def route(handler, query):
        count["n"] += 1
        (failure if count["n"] <= times else then)(handler, query)

    return route


def status_route(status: int, headers=None) -> Route:
    return lambda handler, query: send(handler, status, b"error", "text/plain", headers)


def dropped_route(body: bytes) -> Route:
    """Promise the whole body, send half of it, close the connection."""

    def route(handler, query):
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/mpeg")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(2)

    return route


class LocalServer:
    """Usage: ``with LocalServer() as s: s.routes["/x"] = route; requests.get(s.url("/x"))``"""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _dispatch(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.hits[parts.path] += 1
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                route = outer.routes.get(parts.path)
                if route is None:
                    send_json(self, {"error": {"status": 404, "message": "Not found."}}, 404)
                    return
                query = parse_qs(parts.query)
                if body and self.headers.get("Content-Type", "").startswith("application/x-www"):
                    query.update(parse_qs(body.decode()))
                route(self, query)

            do_GET = do_POST = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
