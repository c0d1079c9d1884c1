"""The service's ASGI middleware: the ``Host`` check, the body cap, the security headers.

Each refuses in the service's one error shape (``errors.refusal``: ``{"detail": "<one line>"}``),
before the request reaches a route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning_module.serving.errors import refusal


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower case, without the port: ``[::1]:8000`` gives
    ``[::1]``, ``LocalHost:80`` gives ``localhost``."""
    value = header.strip().lower()
    if value.startswith("["):  # an IPv6 literal: its colons are not the port's
        end = value.find("]")
        return value[: end + 1] if end != -1 else value
    return value.split(":", 1)[0]


class HostCheck:
    """Refuse (400) requests whose ``Host`` header is not one of ``allowed_hosts``.

    A web page that rebinds its own domain to 127.0.0.1 sends its own name as ``Host``, so it
    cannot use a loopback service through a visitor's browser. Patterns are exact names,
    ``*.example.org`` (any subdomain) or ``*`` (anything, e.g. behind a reverse proxy). Starlette
    has a ``TrustedHostMiddleware``, but it answers in ``text/plain`` and cuts ``[::1]:8000`` at
    its first colon, refusing the IPv6 loopback.
    """

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = [pattern.strip().lower() for pattern in allowed_hosts]
        for pattern in self.allowed:
            if (
                "*" in pattern
                and pattern != "*"
                and not (pattern.startswith("*.") and "*" not in pattern[1:])
            ):
                raise ValueError(f"allowed host {pattern!r}: use a name, '*.domain' or '*'")
        self.any = "*" in self.allowed

    def accepts(self, host: str) -> bool:
        """True when ``host`` (a ``Host`` header's value) matches an allowed pattern."""
        if self.any:
            return True
        name = host_name(host)
        return any(
            name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:]))
            for pattern in self.allowed
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.any:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.accepts(host):
            await self.app(scope, receive, send)
            return
        response = refusal(400, "Host header not accepted by this server (see --allowed-host)")
        await response(scope, receive, send)


class BodyLimit:
    """Refuse (413) bodies over ``max_bytes`` on every path but ``exempt`` (uploads have their
    own cap), by ``Content-Length`` and by counting what streams in.

    The body (at most ``max_bytes``: a ``tag-path`` JSON) is read here before the route sees it,
    so a chunked body over the cap is refused with 413 too; raised inside the route's own body
    parsing, the refusal would become FastAPI's 400 "error parsing the body".
    """

    def __init__(self, app: Any, max_bytes: int, exempt: tuple[str, ...]) -> None:
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        too_large = refusal(413, "request body too large")
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").strip()
        if length.isdigit() and int(length) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nobody to answer
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:  # after the body: wait for the disconnect as the app would
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


class SecurityHeaders:
    """No sniffing, no referrer, no caching of answers about the user's files."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
