"""Untrusted downloads, against a real HTTP server on 127.0.0.1 with the real requests client:
sizes are bounded however the server lies, and file names come from ids only."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from datamodules.sources.base import Item
from datamodules.sources.download import DownloadConfig, downloader
from tests.datamodules.sources.http_server import LocalServer, file_route, send

CHUNK = 64 * 1024
CONFIG = DownloadConfig(workers=2, retries=1, backoff=0.01, timeout=5.0, max_mb=0.5)


def endless_route(sent: list[int], chunks: int = 400):
    """A chunked body with no Content-Length, 25 MB long unless the client hangs up."""

    def route(handler, query):
        handler.send_response(200)
        handler.send_header("Content-Type", "audio/mpeg")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for _ in range(chunks):
                handler.wfile.write(b"%x\r\n" % CHUNK + b"\xff" * CHUNK + b"\r\n")
                sent[0] += 1
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading and closed the connection
            handler.close_connection = True

    return route


def gzip_bomb_route(handler, query):
    """50 KB on the wire, 50 MB once requests transparently un-gzips it."""
    body = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    send(handler, 200, body, "audio/mpeg", {"Content-Encoding": "gzip"})


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_size_is_bounded_when_the_server_hides_or_lies_about_it(tmp_path: Path) -> None:
    sent = [0]
    audio_dir = tmp_path / "audio"
    with LocalServer() as server:
        server.routes["/endless.mp3"] = endless_route(sent)
        server.routes["/bomb.mp3"] = gzip_bomb_route
        server.routes["/ok.mp3"] = file_route(b"\xff\xfb" * 1000)
        items = [
            Item("t:endless", url=server.url("/endless.mp3"), file_id="endless"),
            Item("t:bomb", url=server.url("/bomb.mp3"), file_id="bomb"),
            Item("t:ok", url=server.url("/ok.mp3"), file_id="ok"),
        ]
        results = downloader(CONFIG)(items, audio_dir)
    assert results["t:ok"] is None and (audio_dir / "ok.mp3").stat().st_size == 2000
    for track_id in ("t:endless", "t:bomb"):
        skip = results[track_id]
        assert skip is not None and skip.reason == "too large", skip
        assert "more than 0.5 MB" in skip.detail and "\n" not in skip.detail
    # the client stopped reading soon after the cap; nothing partial is left behind
    assert sent[0] < 400
    assert files_under(tmp_path) == {audio_dir / "ok.mp3"}


HOSTILE_IDS = [
    "../../outside",
    "/etc/passwd",
    "..",
    "a/../../b",
    "..\\..\\windows",
    "name\0with-nul",
    "~root/.ssh/authorized_keys",
    "x" * 500,
]


def test_file_names_come_from_ids_only(tmp_path: Path) -> None:
    audio_dir = tmp_path / "deep" / "audio"
    with LocalServer() as server:
        # a hostile server: a script behind the URL, and a Content-Disposition file name
        server.routes["/dl/payload.sh"] = lambda handler, query: send(
            handler,
            200,
            b"\xff\xfb" * 100,
            "audio/mpeg",
            {"Content-Disposition": 'attachment; filename="../../../evil.sh"'},
        )
        items = [
            Item(f"t:{i}", url=server.url("/dl/payload.sh?name=../../x.sh"), file_id=file_id)
            for i, file_id in enumerate(HOSTILE_IDS)
        ]
        items.append(Item("t:dots", url=server.url("/dl/payload.sh"), file_id="..."))
        results = downloader(CONFIG)(items, audio_dir)
    written = files_under(tmp_path)
    assert written, results
    for path in written:
        assert path.parent == audio_dir, path  # nothing escaped the audio folder
        assert path.suffix == ".mp3"  # never the URL's .sh, never the server's name
        assert set(path.stem) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-0123456789"
        )
        assert len(path.name) <= 124
    downloaded = [i for i in items if results[i.track_id] is None]
    assert len(downloaded) == len(written)  # distinct ids never overwrite each other silently
    for item in items:
        if results[item.track_id] is not None:
            assert results[item.track_id].reason == "bad file id"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/a.mp3", "//nohost"])
def test_only_http_urls_are_fetched(tmp_path: Path, url: str) -> None:
    results = downloader(CONFIG)([Item("t:x", url=url, file_id="x")], tmp_path / "audio")
    assert results["t:x"] is not None and results["t:x"].reason == "bad url"
    assert not files_under(tmp_path)
