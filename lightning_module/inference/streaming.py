"""Streaming for the tagger: the windows a prediction needs, from a file decoded block by block.

A file is never held whole: :class:`WindowStream` keeps only the samples a wanted window still
needs (plus the end-aligned last window's tail), and :func:`decode_windows` is what a decode
worker (thread or process) runs for :meth:`Tagger.predict_files`. numpy only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamodules.audio import (
    SILENCE_RMS,
    STREAM_BLOCK_SECONDS,
    AudioError,
    AudioInfo,
    audio_info,
    stream_audio,
    window_starts,
)
from datamodules.schema import spread_evenly

#: Shortest audio we tag, in seconds; shorter clips carry too little music to say anything.
MIN_SECONDS = 1.0


@dataclass
class Decoded:
    """One file as a decode worker hands it back: its length in samples, the window starts
    (samples) and the windows, (len(starts), window) float32, or (1, samples) for audio no longer
    than a window (run whole, unpadded)."""

    samples: int
    starts: list[int]
    windows: np.ndarray


def decode_worker_init() -> None:
    # One thread per worker process: the workers are the parallelism, and a pool of threads per
    # process would only fight the model's threads in the parent for the cores. (Decoding in the
    # workers uses no torch; soxr and the codecs are single-threaded.)
    os.environ["OMP_NUM_THREADS"] = "1"


def decode_windows(
    path: str,
    sample_rate: int,
    window: int,
    hop: int,
    max_windows: int | None,
    offset: float,
    duration: float | None,
) -> Decoded | AudioError:
    """Stream ``path`` and keep the windows a prediction averages (module-level, so a worker
    process can run it); an unusable file gives its AudioError instead."""
    stream = WindowStream(path, sample_rate, window, hop, max_windows, offset, duration)
    try:
        got = dict(stream)
    except AudioError as err:
        return err
    return Decoded(stream.samples, stream.starts, np.stack([got[s] for s in stream.starts]))


def tail_threshold(hop: int) -> int:
    """Samples of tail (past the hop grid) that earn an end-aligned window of their own: a
    quarter hop (0.75 s for 6 s windows at half overlap). A shorter tail would weigh under a
    quarter of a window in the average and repeat its neighbour in a timeline."""
    return hop // 4


def planned_starts(
    n: int, window: int, hop: int, max_windows: int | None, min_tail: int
) -> list[int]:
    """:meth:`Tagger.starts`: window starts of ``n`` samples, ``max_windows`` evenly spread."""
    starts = window_starts(n, window, hop, min_tail)
    return [starts[i] for i in spread_evenly(len(starts), max_windows)]


class WindowStream:
    """Iterating yields (start, window samples) for every window a prediction of the file needs
    (and possibly a few it turns out not to need), decoding the file block by block; afterwards
    ``samples`` is its length and ``starts`` the window starts the prediction uses, exactly
    ``Tagger.starts(samples, max_windows)`` of the whole decoded file.

    The length is known only at the end of the stream, and with ``max_windows`` the windows
    kept depend on it, so they are chosen from the header's length estimate; the last window
    (aligned to the end) comes from a tail kept in memory. When the estimate was wrong enough to
    change the choice (rare: mp3 and some containers only estimate), the missing windows are
    decoded in a second pass. Too short and silent audio are refused as :func:`load_audio`
    refuses them, silence judged on the whole stream.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        window: int,
        hop: int,
        max_windows: int | None,
        offset: float = 0.0,
        duration: float | None = None,
        block_seconds: float = STREAM_BLOCK_SECONDS,
    ) -> None:
        self.path, self.sample_rate, self.window, self.hop = path, sample_rate, window, hop
        self.max_windows, self.offset, self.duration = max_windows, offset, duration
        self.block_seconds = block_seconds
        self.samples = 0
        self.starts: list[int] = []

    def _blocks(self) -> Iterator[np.ndarray]:
        for block in stream_audio(
            self.path, self.sample_rate, self.block_seconds, self.offset, self.duration
        ):
            yield _numpy(block)

    def _estimate(self, info: AudioInfo) -> int:
        """The header's idea of the length, in samples at ``sample_rate``."""
        seconds = max(0.0, info.duration - self.offset)
        if self.duration is not None:
            seconds = min(seconds, self.duration)
        return int(round(seconds * self.sample_rate))

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        window, hop, max_windows = self.window, self.hop, self.max_windows
        estimate = self._estimate(audio_info(self.path))
        min_tail = tail_threshold(hop)
        if (
            max_windows is None
            or len(window_starts(estimate, window, hop, min_tail)) <= max_windows
        ):
            # every window (a short file, or a timeline); a header that undercounts wildly is
            # caught by the cap and fixed by the second pass
            picker = Picker(window, hop, None, None if max_windows is None else 2 * max_windows)
        else:
            planned = planned_starts(estimate, window, hop, max_windows, min_tail)
            picker = Picker(window, hop, [s for s in planned if s % hop == 0])
        sum_squares = 0.0
        for block in self._blocks():
            sum_squares += float(np.dot(block.astype(np.float64), block))
            yield from picker.feed(block)
        n = picker.total
        seconds = n / self.sample_rate
        if seconds < MIN_SECONDS:
            raise AudioError(f"{self.path}: too short ({seconds:.2f} s < {MIN_SECONDS:g} s)")
        if math.sqrt(sum_squares / n) < SILENCE_RMS:
            raise AudioError(f"{self.path}: audio is silent")
        self.samples, self.starts = n, planned_starts(n, window, hop, max_windows, min_tail)
        missing = []
        for start in self.starts:
            if start not in picker.given:
                tail = picker.tail_window(start)
                if tail is None:
                    missing.append(start)
                else:
                    picker.given.add(start)
                    yield start, tail
        if not missing:
            return
        again = Picker(window, hop, missing)
        for block in self._blocks():
            yield from again.feed(block)
        if not again.given.issuperset(missing):
            raise AudioError(f"{self.path}: cannot decode (the length changed between two reads)")


class Picker:
    """Cuts the windows starting at ``wanted`` (sorted sample indices; ``None``: every multiple of
    ``hop``, at most ``cap`` of them) out of blocks fed in order, holding only the samples a
    wanted window still needs plus the last ``window`` samples (the end-aligned last window, or
    the whole of audio no longer than a window)."""

    def __init__(
        self, window: int, hop: int, wanted: Sequence[int] | None, cap: int | None = None
    ) -> None:
        self.window, self.hop = window, hop
        self.wanted = None if wanted is None else sorted(set(wanted))
        self.cap = cap
        self.given: set[int] = set()
        self.total = 0
        self._next = 0  # index into wanted, or the count of multiples of hop given so far
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # sample index of _buf[0]

    def _next_start(self) -> int | None:
        if self.wanted is None:
            if self.cap is not None and self._next >= self.cap:
                return None
            return self._next * self.hop
        return self.wanted[self._next] if self._next < len(self.wanted) else None

    def feed(self, block: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        self._buf = np.concatenate([self._buf, block]) if self._buf.size else block
        self.total = self._buf_start + self._buf.size
        while (start := self._next_start()) is not None and start + self.window <= self.total:
            lo = start - self._buf_start
            self.given.add(start)
            self._next += 1
            yield start, self._buf[lo : lo + self.window].copy()
        nxt = self._next_start()
        keep = self.total - self.window if nxt is None else min(nxt, self.total - self.window)
        if keep > self._buf_start:
            self._buf = self._buf[keep - self._buf_start :].copy()
            self._buf_start = keep

    def tail_window(self, start: int) -> np.ndarray | None:
        """The window at ``start`` once the stream has ended, if the kept tail holds it (audio no
        longer than a window is the whole of it)."""
        length = min(self.window, self.total)
        if start < self._buf_start or start + length > self.total:
            return None
        lo = start - self._buf_start
        return self._buf[lo : lo + length].copy()


def _numpy(wave: Any) -> np.ndarray:
    """(samples,) float32 numpy of a waveform (a CPU tensor is accepted from older callers)."""
    if hasattr(wave, "detach"):
        wave = wave.detach().cpu().numpy()
    return np.asarray(wave, dtype=np.float32)
