"""What the tagging service accepts, and the checks that hold it to that.

Every limit is a number in :class:`ServiceLimits` with a safe default; each refusal is an
:class:`HTTPError` carrying the status code and a one-line reason that names the upload or the
path the client sent (never a server path). Nothing here imports FastAPI, so the rules are usable
and testable on their own.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

#: Longest upload name echoed back (as ``path`` in results and in error messages), characters.
MAX_NAME_CHARS = 255
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may cost.

    Args:
        max_upload_bytes: largest uploaded file (bytes); more is refused with 413 while it
            streams in, before the rest is read.
        max_seconds: longest audio tagged per request (seconds of the tagged slice); longer is
            refused with 413 from the header, before decoding (and again after decoding, for
            headers that under-state the length).
        request_timeout: seconds from the start of a request (upload included) to its answer;
            past it the client gets 504 and the request's work stops at its next model batch.
        max_concurrent: tagging requests in progress at once (upload, decode, model); one more
            gets 503 with ``Retry-After`` instead of queueing without bound.
        retry_after: seconds a client is told to wait after a 503.
    """

    max_upload_bytes: int = 200 * 1024**2
    max_seconds: float = 20 * 60.0
    request_timeout: float = 120.0
    max_concurrent: int = 32
    retry_after: int = 1

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_seconds", "request_timeout", "max_concurrent"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class HTTPError(Exception):
    """A refusal: ``status`` (HTTP code), ``detail`` (one line for the client) and headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class ConcurrencyGate:
    """At most ``limit`` holders at once; :meth:`try_enter` never waits (a full gate is a 503).

    Thread-safe: a request enters on the event loop and may leave from the worker thread that
    finishes its work after the client already got a 504, so the slot is held as long as the
    work really runs.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Slots in use now."""
        return self._held

    def try_enter(self) -> bool:
        """Take a slot if one is free; False when all ``limit`` are taken."""
        with self._lock:
            if self._held >= self.limit:
                return False
            self._held += 1
            return True

    def leave(self) -> None:
        """Give back a slot taken by :meth:`try_enter`."""
        with self._lock:
            self._held = max(0, self._held - 1)


def display_name(filename: str | None) -> str:
    """The name an upload is known by in results and errors: the client's file name without any
    folder part, control characters or surrounding blanks, at most ``MAX_NAME_CHARS`` characters
    (``"upload"`` when it has none). It is only ever echoed back, never used as a server path."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:MAX_NAME_CHARS] or "upload"


def upload_suffix(name: str) -> str:
    """The extension the temp file keeps (``.mp3``), so it decodes as ``predict_clip`` would the
    same file; empty for anything but a short alphanumeric extension."""
    suffix = Path(name).suffix
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ""


def resolve_inside(root: Path, requested: str) -> Path:
    """``requested`` (relative to ``root``, or absolute) as a real path inside ``root``.

    The path is resolved with every symlink followed before it is compared with the (resolved)
    root, so ``../``, absolute paths elsewhere and symlinks pointing out of the root are all
    refused alike.

    Raises:
        HTTPError: 403, naming the path as the client sent it.
    """
    if "\x00" in requested:
        raise HTTPError(403, f"{requested!r}: NUL byte in path")
    shown = requested[:MAX_NAME_CHARS]
    if not requested.strip():
        raise HTTPError(403, "empty path")
    try:
        resolved = (root / requested).resolve()
    except (OSError, RuntimeError, ValueError) as err:  # symlink loops, odd names
        raise HTTPError(403, f"{shown}: cannot be resolved ({type(err).__name__})") from err
    if not resolved.is_relative_to(root):
        raise HTTPError(403, f"{shown}: outside the music root")
    return resolved
