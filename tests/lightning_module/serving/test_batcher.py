"""The batcher and the limits on their own: shared passes, slices back to the right caller,
lengths never mixed, deadlines; names and paths the service accepts."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lightning_module.serving.batcher import DeadlineExceeded, WindowBatcher, deadline
from lightning_module.serving.limits import (
    ConcurrencyGate,
    HTTPError,
    display_name,
    resolve_inside,
    upload_suffix,
)


class Recorder:
    """A runner that remembers each batch's shape and returns each window's sum and length."""

    def __init__(self, delay: float = 0.0) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.delay = delay

    def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        self.shapes.append(tuple(windows.shape))
        time.sleep(self.delay)
        return {
            "sum": windows.sum(-1, keepdims=True),
            "length": np.full((len(windows), 1), float(windows.shape[-1])),
        }


def test_concurrent_callers_share_passes_and_get_their_own_rows() -> None:
    runner = Recorder(delay=0.02)
    batcher = WindowBatcher(runner, max_batch=64, max_wait=0.05)
    inputs = [
        np.full((5, 100), float(i), dtype=np.float32) + np.arange(5.0)[:, None] for i in range(16)
    ]
    start = threading.Barrier(16)

    def call(x: np.ndarray) -> dict[str, np.ndarray]:
        start.wait()
        return batcher(x)

    with ThreadPoolExecutor(16) as pool:
        outputs = list(pool.map(call, inputs))
    batcher.close()
    for x, out in zip(inputs, outputs, strict=True):
        assert np.array_equal(out["sum"], x.sum(-1, keepdims=True))
    assert batcher.forward_passes == len(runner.shapes) < 16
    assert batcher.windows_run == 80
    assert all(n <= 64 for n, _ in runner.shapes)


def test_lengths_never_share_a_batch_and_big_calls_are_split() -> None:
    runner = Recorder()
    batcher = WindowBatcher(runner, max_batch=8, max_wait=0.05)
    with ThreadPoolExecutor(3) as pool:
        long = pool.submit(batcher, np.ones((20, 50), dtype=np.float32))
        short = pool.submit(batcher, np.ones((1, 30), dtype=np.float32))
        other = pool.submit(batcher, np.ones((3, 50), dtype=np.float32))
        results = long.result(), short.result(), other.result()
    batcher.close()
    assert results[0]["sum"].shape == (20, 1) and np.all(results[0]["length"] == 50)
    assert np.all(results[1]["length"] == 30) and np.all(results[2]["length"] == 50)
    assert all(n <= 8 for n, _ in runner.shapes)
    assert {length for _, length in runner.shapes} == {30, 50}


def test_deadline_cancels_waiting_windows() -> None:
    gate = threading.Event()

    def blocked(windows: np.ndarray) -> dict[str, np.ndarray]:
        gate.wait(10)
        return {"x": windows[:, :1]}

    batcher = WindowBatcher(blocked, max_batch=4, max_wait=0.0)
    first = batcher.submit(np.ones((4, 10), dtype=np.float32))  # occupies the model thread
    time.sleep(0.05)
    with deadline(time.monotonic() + 0.05), pytest.raises(DeadlineExceeded):
        batcher(np.ones((2, 10), dtype=np.float32))
    gate.set()
    assert first.result(5)["x"].shape == (4, 1)
    batcher.close(5)
    assert batcher.cancelled == 2 and batcher.windows_run == 4


def test_runner_errors_reach_every_waiting_caller() -> None:
    def broken(windows: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("out of memory")

    batcher = WindowBatcher(broken, max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher(np.ones((2, 10), dtype=np.float32))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(np.ones((1, 10), dtype=np.float32))


def test_gate() -> None:
    gate = ConcurrencyGate(2)
    assert gate.try_enter() and gate.try_enter() and not gate.try_enter()
    gate.leave()
    assert gate.held == 1 and gate.try_enter()


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("song.mp3", "song.mp3"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\x.flac", "x.flac"),
        ("a\x00b\x1b[31m.wav", "ab[31m.wav"),
        ("", "upload"),
        (None, "upload"),
        ("x" * 400, "x" * 255),
    ],
)
def test_display_name(sent, shown) -> None:
    assert display_name(sent) == shown


def test_upload_suffix() -> None:
    assert upload_suffix("a.MP3") == ".mp3"
    assert upload_suffix("a.tar.gz") == ".gz"
    assert upload_suffix("a.m p3") == "" and upload_suffix("noext") == ""
    assert upload_suffix("a." + "x" * 20) == ""


def test_resolve_inside(tmp_path: Path) -> None:
    root = (tmp_path / "root").resolve()
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.wav").write_bytes(b"x")
    (tmp_path / "out.wav").write_bytes(b"x")
    (root / "loop").symlink_to(root / "loop")
    assert resolve_inside(root, "a/x.wav") == root / "a" / "x.wav"
    assert resolve_inside(root, str(root / "a" / "x.wav")) == root / "a" / "x.wav"
    assert resolve_inside(root, "a/../a/x.wav") == root / "a" / "x.wav"
    for bad in ["../out.wav", str(tmp_path / "out.wav"), "a/\x00", "", "/"]:
        with pytest.raises(HTTPError) as err:
            resolve_inside(root, bad)
        assert err.value.status == 403
    with pytest.raises(HTTPError):
        resolve_inside(root, "loop/x.wav")
