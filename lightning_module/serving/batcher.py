"""Dynamic batching: windows of concurrent requests share the model's forward passes.

One thread owns the model. Request threads hand it (n, samples) windows and wait on a future;
the thread takes the oldest waiting windows, waits at most ``max_wait`` seconds for more to
arrive (until ``max_batch`` windows are there), runs them as one batch and hands every request
its slice of the outputs. A request's windows never wait more than ``max_wait`` for company, and
16 clients at once cost a handful of forward passes instead of 16. Only windows of one length
share a batch (a clip shorter than the model window is run whole, unpadded, exactly as
``Tagger`` runs it alone).

:class:`WindowBatcher` is itself a ``Runner`` (``batcher(windows) -> outputs``, blocking), so a
:class:`~lightning_module.inference.tagger.Tagger` built on it windows, averages and reports
exactly as it does on its own runner; only the batch its windows travel in changes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from lightning_module.inference.runners import Runner

_local = threading.local()


class DeadlineExceeded(TimeoutError):
    """The request's deadline (see :func:`deadline`) passed while its windows waited."""


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Within this block, batcher calls from this thread give up at ``at`` (``time.monotonic``),
    cancelling windows not yet run, so a timed-out request stops costing model time."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = at
    try:
        yield
    finally:
        _local.deadline = previous


def current_deadline() -> float | None:
    """This thread's :func:`deadline` (``time.monotonic``), or None."""
    return getattr(_local, "deadline", None)


@dataclass
class _Item:
    windows: np.ndarray  # (n, samples)
    future: Future
    enqueued: float = field(default_factory=time.monotonic)


class WindowBatcher:
    """Runs ``runner`` in one thread on batches gathered from many callers.

    Args:
        runner: (batch, samples) float32 numpy → dict of (batch, n) numpy (``Tagger.runner``).
        max_batch: most windows in one forward pass.
        max_wait: seconds the oldest waiting windows wait for others before running anyway.

    Counters (read them, e.g. in tests and benchmarks): ``forward_passes``, ``windows_run``,
    ``batch_sizes`` (a Counter of windows per pass), ``cancelled`` (windows dropped because their
    request gave up).
    """

    def __init__(self, runner: Runner, max_batch: int = 64, max_wait: float = 0.01) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.runner = runner
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.forward_passes = 0
        self.windows_run = 0
        self.cancelled = 0
        self.batch_sizes: Counter[int] = Counter()
        self._pending: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="model-batcher", daemon=True)
        self._thread.start()

    # -- callers ----------------------------------------------------------------------------------
    def submit(self, windows: np.ndarray) -> Future:
        """Queue (n, samples) windows, n <= ``max_batch``; the future gives their raw outputs."""
        if windows.ndim != 2 or not 0 < len(windows) <= self.max_batch:
            raise ValueError(f"expected (1..{self.max_batch}, samples), got {tuple(windows.shape)}")
        item = _Item(windows, Future())
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(item)
            self._cond.notify()
        return item.future

    def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``windows`` (any number) in shared batches and wait for them: the ``Runner``
        protocol. Honours this thread's :func:`deadline`.

        Raises:
            DeadlineExceeded: the deadline passed first (windows not yet run are dropped).
        """
        chunks = [windows[i : i + self.max_batch] for i in range(0, len(windows), self.max_batch)]
        futures = [self.submit(chunk) for chunk in chunks]
        at = current_deadline()
        outputs = []
        try:
            for future in futures:
                timeout = None if at is None else max(0.0, at - time.monotonic())
                outputs.append(future.result(timeout))
        except (FutureTimeout, CancelledError) as err:
            for future in futures:
                future.cancel()
            raise DeadlineExceeded("request deadline passed while waiting for the model") from err
        if len(outputs) == 1:
            return outputs[0]
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the thread (waiting at most ``timeout`` seconds)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the model thread -------------------------------------------------------------------------
    def _take(self) -> list[_Item] | None:
        """Wait for work; return the next batch's items (None: closed and drained)."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending[0]
            length = first.windows.shape[-1]
            ready_at = first.enqueued + self.max_wait
            while not self._closed and self._waiting(length) < self.max_batch:
                left = ready_at - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken: list[_Item] = []
            size = 0
            kept: deque[_Item] = deque()
            for item in self._pending:
                n = len(item.windows)
                if item.windows.shape[-1] == length and size + n <= self.max_batch:
                    taken.append(item)
                    size += n
                else:
                    kept.append(item)
            self._pending = kept
            return taken

    def _waiting(self, length: int) -> int:
        return sum(len(i.windows) for i in self._pending if i.windows.shape[-1] == length)

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            live = []
            for item in taken:
                if item.future.set_running_or_notify_cancel():
                    live.append(item)
                else:
                    self.cancelled += len(item.windows)
            if not live:
                continue
            batch = np.concatenate([item.windows for item in live])
            try:
                out = self.runner(batch)
            except Exception as err:  # e.g. out of memory: every waiting request gets it
                for item in live:
                    item.future.set_exception(err)
                continue
            self.forward_passes += 1
            self.windows_run += len(batch)
            self.batch_sizes[len(batch)] += 1
            first = 0
            for item in live:
                n = len(item.windows)
                item.future.set_result({k: v[first : first + n] for k, v in out.items()})
                first += n
