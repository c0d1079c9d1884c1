"""Resampling with soxr (libsoxr, the resampler librosa uses) and cutting the result into blocks.

One ``soxr.ResampleStream`` per file, fed block by block and flushed at the end: its output does
not depend on how its input is chunked, so a file decoded whole and the same file streamed in
blocks give the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from datamodules.decoding.files import AudioError

#: soxr's quality preset ("HQ": 20-bit precision, the preset librosa's default ``soxr_hq`` uses).
SOXR_QUALITY = "HQ"


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a (samples,) float32 waveform from ``orig_sr`` to ``new_sr`` Hz with soxr, as
    :func:`load_audio` does (not clamped)."""
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == new_sr:
        return wave
    stream = soxr.ResampleStream(orig_sr, new_sr, 1, dtype="float32", quality=SOXR_QUALITY)
    head = stream.resample_chunk(np.ascontiguousarray(wave), last=False)
    return np.concatenate([head, stream.resample_chunk(np.zeros(0, np.float32), last=True)])


def resampled(
    path: Path, blocks: Iterator[tuple[int, np.ndarray]], new_sr: int
) -> Iterator[np.ndarray]:
    """Resample a stream of (rate, mono float32) blocks to ``new_sr`` and clamp to [-1, 1].

    :func:`load_audio` and :func:`stream_audio` both go through here: one
    ``soxr.ResampleStream`` per file, fed block by block and flushed at the end, whose output is
    the same, bit for bit, however the input is cut into blocks (tested). So the stream,
    concatenated, is the whole-file decode.
    """
    stream: soxr.ResampleStream | None = None
    rate = None
    for block_rate, block in blocks:
        if rate is None:
            rate = block_rate
            if rate != new_sr:
                stream = soxr.ResampleStream(rate, new_sr, 1, dtype="float32", quality=SOXR_QUALITY)
        elif block_rate != rate:
            raise AudioError(f"{path}: cannot decode (sample rate changes, {rate} → {block_rate})")
        if stream is None:
            out = np.array(block, dtype=np.float32)  # a copy: never clamp the decoder's buffer
        else:
            out = stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=False)
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)
    if stream is not None:
        out = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if out.size:
            yield np.clip(out, -1.0, 1.0, out=out)


def reblocked(
    path: Path,
    blocks: Iterator[tuple[int, np.ndarray]],
    sample_rate: int,
    out_block: int,
    offset: float,
) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    n_pending = 0
    produced = False
    for piece in resampled(path, blocks, sample_rate):
        pending.append(piece)
        n_pending += piece.size
        while n_pending >= out_block:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            produced = True
            yield joined[:out_block].copy()  # a copy: do not keep the rest alive through a view
            pending, n_pending = [joined[out_block:]], n_pending - out_block
    if n_pending:
        produced = True
        yield np.concatenate(pending)
    if not produced:
        where = f" at offset {offset:g} s" if offset else ""
        raise AudioError(f"{path}: no audio samples{where}")
