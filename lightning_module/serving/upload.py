"""Receive one uploaded file from a ``multipart/form-data`` request body, streamed to disk.

The body is parsed as it arrives (python-multipart's push parser) and the ``file`` part is
written straight into a temp file in the request's own folder; past ``max_bytes`` the upload is
refused (413) before the rest of the body is read, so a huge upload never lands in memory or
anywhere else on disk. Other form fields are skipped without being kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from lightning_module.serving.limits import HTTPError, display_name, upload_suffix

#: Name of the form field that carries the audio.
FILE_FIELD = "file"
#: Bytes of the body that are not the file (boundaries, part headers, other fields) tolerated.
FORM_OVERHEAD_BYTES = 64 * 1024


@dataclass
class Upload:
    """A received file: ``path`` (the temp file) and ``name`` (the client's, for display)."""

    path: Path
    name: str
    size: int


class _Receiver:
    """python-multipart callbacks writing the first ``file`` part to ``folder``."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.upload: Upload | None = None
        self._stream: IO[bytes] | None = None
        self._field = b""
        self._value = b""
        self._disposition = b""
        self._in_file = False
        self.complete = False  # the closing boundary was seen

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FILE_FIELD or self.upload is not None:
            return  # another field, or a second file: read and dropped
        raw = options.get(b"filename")
        shown = display_name(raw.decode("utf-8", "replace") if raw is not None else None)
        path = self.folder / f"upload{upload_suffix(shown)}"
        self._stream = open(path, "wb")  # noqa: SIM115 (closed in on_part_end / close)
        self.upload = Upload(path=path, name=shown, size=0)
        self._in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._in_file:
            assert self.upload is not None and self._stream is not None
            self.upload.size += n
            if self.upload.size > self.max_bytes:
                raise HTTPError(
                    413,
                    f"{self.upload.name}: upload too large (over {_mb(self.max_bytes)}; "
                    "this server takes files up to that size)",
                )
            self._stream.write(data[start:end])
        # Other parts are dropped unread (never held), bounded by the body cap of the caller.

    def on_part_end(self) -> None:
        if self._in_file:
            self.close()
            self._in_file = False

    def on_end(self) -> None:
        self.complete = True

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


async def receive_upload(
    content_type: str,
    content_length: str | None,
    body: AsyncIterator[bytes],
    folder: Path,
    max_bytes: int,
) -> Upload:
    """Stream a multipart body's ``file`` part into ``folder``.

    Args:
        content_type, content_length: the request's headers (``content_length`` may be absent:
            chunked uploads are counted as they stream).
        body: the request body, chunk by chunk.
        folder: an empty folder of this request's own; the file is written as ``upload<.ext>``.
        max_bytes: the file size cap.

    Raises:
        HTTPError: 415 not multipart, 400 malformed body, 413 over the cap, 422 no ``file`` part.
    """
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise HTTPError(415, f"send the audio as multipart/form-data with a '{FILE_FIELD}' field")
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPError(400, "multipart/form-data without a boundary")
    declared = int(content_length) if (content_length or "").strip().isdigit() else None
    if declared is not None and declared > max_bytes + FORM_OVERHEAD_BYTES:
        raise HTTPError(413, f"upload too large ({declared} bytes > {_mb(max_bytes)})")
    receiver = _Receiver(folder, max_bytes)
    seen = 0
    try:
        parser = MultipartParser(boundary, receiver.callbacks())
        async for chunk in body:
            parser.write(chunk)  # first: the file part's own cap names the upload
            seen += len(chunk)
            if seen > max_bytes + FORM_OVERHEAD_BYTES:
                raise HTTPError(413, f"upload too large (over {_mb(max_bytes)})")
        parser.finalize()
    except FormParserError as err:
        raise HTTPError(400, f"malformed multipart body ({type(err).__name__})") from err
    except ValueError as err:  # a boundary python-multipart rejects
        raise HTTPError(400, f"malformed multipart body ({err})") from err
    finally:
        receiver.close()
    if not receiver.complete:
        raise HTTPError(400, "incomplete multipart body (no closing boundary)")
    if receiver.upload is None:
        raise HTTPError(
            422, f"no '{FILE_FIELD}' part in the form: send the audio as '{FILE_FIELD}'"
        )
    return receiver.upload


def _mb(n: int) -> str:
    return f"{n / 1024**2:g} MiB" if n >= 1024**2 else f"{n} bytes"
