"""Real servers on 127.0.0.1 for the service tests: uvicorn in a thread (the app's objects stay
reachable, e.g. the batcher's counters) or ``scripts/serve.py`` in a subprocess (signals, logs)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO_ROOT

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')"
)
httpx = pytest.importorskip("httpx", reason="the dev extra is not installed")
import uvicorn  # noqa: E402

from lightning_module.inference.tagger import Tagger  # noqa: E402
from lightning_module.serving.accesslog import ACCESS_LOGGER  # noqa: E402
from lightning_module.serving.app import create_app  # noqa: E402
from lightning_module.serving.limits import ServiceLimits  # noqa: E402
from lightning_module.serving.service import ServiceConfig, TaggingService  # noqa: E402

SERVE_SCRIPT = REPO_ROOT / "scripts" / "serve.py"


class ThreadServer:
    """uvicorn serving ``create_app(service)`` on a free 127.0.0.1 port in a daemon thread."""

    def __init__(self, service: TaggingService) -> None:
        self.service = service
        self.app = create_app(service)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


@contextmanager
def access_log() -> Iterator[list[dict]]:
    """The access log's records (parsed JSON lines) of servers in this process while inside."""
    records: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(record.getMessage()))

    logger = logging.getLogger(ACCESS_LOGGER)
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def make_service(checkpoint: Path, tmp: Path, tagger: Tagger | None = None, **options):
    """A service on ``checkpoint`` with its temp folder and music root under ``tmp``."""
    limits = {k: options.pop(k) for k in list(options) if k in ServiceLimits.__dataclass_fields__}
    (tmp / "uploads").mkdir(parents=True, exist_ok=True)
    (tmp / "music").mkdir(parents=True, exist_ok=True)
    config = ServiceConfig(
        model=checkpoint,
        music_root=tmp / "music",
        temp_dir=tmp / "uploads",
        limits=ServiceLimits(**limits),
        **options,
    )
    return TaggingService(config, tagger=tagger)


@pytest.fixture(scope="session")
def base_tagger(trained_checkpoint: Path) -> Tagger:
    """The tiny model, loaded once; services share its runner (each has its own batcher)."""
    return Tagger.from_file(trained_checkpoint)


@pytest.fixture(scope="module")
def server(trained_checkpoint: Path, base_tagger: Tagger, tmp_path_factory) -> Iterator:
    """A default-limits server shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("served")
    with ThreadServer(make_service(trained_checkpoint, tmp, base_tagger)) as running:
        yield running


def music(path: Path, seconds: float = 6.0, genres=("rock",), sr: int = 22050) -> Path:
    """A synthetic music-like clip (``datamodules.synthetic``), genres in turn; format from the
    suffix (``.mp3`` is MPEG layer III)."""
    from datamodules.synthetic import render_clip

    parts = []
    for i, genre in enumerate(genres):
        samples, _ = render_clip(
            genre, "happy", seconds / len(genres), sr, np.random.default_rng(i)
        )
        parts.append(samples)
    data = np.concatenate(parts).astype(np.float32)
    kwargs = {"format": "MP3", "subtype": "MPEG_LAYER_III"} if path.suffix == ".mp3" else {}
    sf.write(path, data, sr, **kwargs)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessServer:
    """``scripts/serve.py`` in a subprocess on a free port; stderr (the access log) captured."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(args[args.index("--temp-dir") + 1]).parent / "server.log"
        self.args = [sys.executable, str(SERVE_SCRIPT), "--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}

    def __enter__(self) -> ProcessServer:
        self._log = open(self.log, "wb")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve.py did not start: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def multipart(name: str, data: bytes, boundary: str = "audiotaggertest") -> tuple[bytes, dict]:
    """A multipart/form-data body with one ``file`` part, and its Content-Type header."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, {"content-type": f"multipart/form-data; boundary={boundary}"}
