"""Decode every manifest row once into one int16 memory-mapped PCM file.

MP3 decoding runs at tens of clips per second per core and would starve a GPU, so training and
evaluation read random crops straight from this cache instead of decoding files.

Layout in ``cache_dir``; ``KEY`` hashes the rows (track id, path, file size and mtime) and the
audio settings (sample rate, length cap, decoder version), so editing, touching, adding or removing
a file, or changing the sample rate, gives a new cache and nothing else does:

* ``KEY.pcm``         all clips back to back, int16 mono at the model's sample rate
* ``KEY.index.npy``   structured array ``track_id, offset, length`` (samples) of every clip kept
* ``KEY.skipped.csv`` ``track_id, audio_path, reason`` of every row that could not be used

The index is a ``.npy`` rather than a CSV: it loads without pandas' type guessing (a CSV reader
turns a track id ``NA`` into NaN and ``007`` into 7 unless told otherwise), it needs no parsing
for a million rows, and ``np.load(allow_pickle=False)`` cannot run code. It is written last and
atomically, so its presence means the cache is complete; it is checked against the PCM size on
every open, and a cache that does not add up is rebuilt. A file lock makes concurrent builders
(DDP ranks, several processes) build once: the first builds, the others wait, then read.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from datamodules.audio import AudioError, load_audio
from datamodules.io import atomic_open

log = logging.getLogger(__name__)

#: Bump when what a cache holds changes for the same inputs (decoder, format of the files).
CACHE_VERSION = 3  # 3: soxr resamples (was torchaudio)
INT16_SCALE = 32767.0
#: Clips shorter than this many seconds are excluded (not enough audio for one crop).
MIN_CLIP_SECONDS = 0.1
SKIPPED_COLUMNS = ["track_id", "audio_path", "reason"]


@dataclass
class AudioCache:
    """Read-only view of a built cache. Opens the memmap lazily so it pickles cheaply to workers.

    ``built`` is True when this call decoded the audio, False when it found a finished cache.
    """

    pcm_path: Path
    offsets: dict[str, tuple[int, int]]  # track_id -> (offset, length) in samples
    skipped: pd.DataFrame  # track_id, audio_path, reason
    sample_rate: int
    built: bool = False
    _pcm: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pcm"] = None  # each worker maps the file itself
        return state

    @property
    def pcm(self) -> np.ndarray:
        """Every sample of the cache, int16, memory-mapped."""
        if self._pcm is None:
            if self.pcm_path.stat().st_size == 0:
                self._pcm = np.zeros(0, dtype=np.int16)
            else:
                self._pcm = np.memmap(self.pcm_path, dtype=np.int16, mode="r")
        return self._pcm

    def __contains__(self, track_id: str) -> bool:
        return track_id in self.offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def length(self, track_id: str) -> int:
        """Clip length in samples."""
        return self.offsets[track_id][1]

    def read(self, track_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples [start, start + length) of a clip, float32 in [-1, 1]; shorter at its end."""
        offset, total = self.offsets[track_id]
        start = min(max(start, 0), total)
        stop = total if length is None else min(start + length, total)
        wave = self.pcm[offset + start : offset + stop].astype(np.float32)
        wave /= INT16_SCALE  # in place: one float copy of the crop, not two
        return wave


def cache_key(
    paths: Sequence[str],
    track_ids: Sequence[str],
    sample_rate: int,
    max_seconds: float | None = None,
) -> str:
    """Hash of what determines the cache content, independent of row order.

    Rows: track id, path, file size and mtime (a touched or rewritten file changes it). Settings:
    sample rate, length cap, minimum length and :data:`CACHE_VERSION`.
    """
    cap = "" if max_seconds is None else f"|max{max_seconds:g}"
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{sample_rate}|min{MIN_CLIP_SECONDS:g}{cap}".encode())
    for track_id, path in sorted(zip(track_ids, paths, strict=True)):
        try:
            stat = os.stat(path)
            signature = f"{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            signature = "missing"
        digest.update(f"|{track_id}|{path}|{signature}".encode())
    return digest.hexdigest()[:16]


def _decode(path: str, sample_rate: int, max_seconds: float | None = None) -> np.ndarray | str:
    """int16 samples of ``path`` (at most ``max_seconds``), or the reason it cannot be used.

    Silent clips are refused: their labels cannot describe audio the model never hears.
    """
    try:
        wave = load_audio(
            path,
            sample_rate,
            duration=max_seconds,
            min_duration=MIN_CLIP_SECONDS,
            allow_silence=False,
        )
    except AudioError as err:
        return str(err)
    except Exception as err:  # never let one bad file stop the build
        return f"{path}: {type(err).__name__}: {' '.join(str(err).split())}"
    # load_audio clamps to [-1, 1], so the rounded values fit int16.
    return np.round(wave * INT16_SCALE).astype(np.int16)


def _decode_in_order(
    paths: Sequence[str], sample_rate: int, max_seconds: float | None, workers: int
) -> Iterator[np.ndarray | str]:
    """Decode ``paths`` in a thread pool, yielding results in input order.

    At most ``2 * workers`` clips are in flight, so memory stays bounded however large the
    manifest (``Executor.map`` would queue every file at once). Threads rather than processes:
    libsndfile and soxr release the GIL, and threads avoid forking a process that has already
    started torch's thread pools.
    """
    with ThreadPoolExecutor(workers) as pool:
        todo = iter(paths)
        pending: deque[Future] = deque(
            pool.submit(_decode, p, sample_rate, max_seconds)
            for p in itertools.islice(todo, 2 * workers)
        )
        while pending:
            result = pending.popleft().result()
            for path in itertools.islice(todo, 1):
                pending.append(pool.submit(_decode, path, sample_rate, max_seconds))
            yield result


def build_cache(
    manifest: pd.DataFrame,
    cache_dir: str | os.PathLike,
    sample_rate: int,
    num_workers: int | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
) -> AudioCache:
    """Return the cache for ``manifest`` rows (absolute ``audio_path``), building it if needed.

    Args:
        manifest: rows with ``track_id`` and ``audio_path`` (other columns are ignored).
        cache_dir: folder of the cache files; created if missing.
        sample_rate: rate in Hz every clip is resampled to.
        num_workers: decoding threads (``None``: one per core, at most 8).
        progress: show a progress bar while decoding.
        max_seconds: keep only the first that many seconds of each clip, so one hour-long file
            cannot fill the disk; random training crops of a clip are drawn from what is kept.

    Rows whose audio is missing, corrupt, silent or shorter than ``MIN_CLIP_SECONDS`` are left out
    and listed in ``AudioCache.skipped`` with a one-line reason; they never stop the build.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted(
        zip(
            manifest["track_id"].astype(str).tolist(),
            manifest["audio_path"].astype(str).tolist(),
            strict=True,
        )
    )
    track_ids = [t for t, _ in rows]
    paths = [p for _, p in rows]
    key = cache_key(paths, track_ids, sample_rate, max_seconds)
    pcm_path = cache_dir / f"{key}.pcm"
    index_path = cache_dir / f"{key}.index.npy"
    skipped_path = cache_dir / f"{key}.skipped.csv"
    lock = FileLock(str(cache_dir / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish building cache %s", key)
        lock.acquire()
    try:
        index = _open_index(index_path, pcm_path)
        built = index is None
        if built:
            workers = num_workers or min(8, os.cpu_count() or 1)
            _build(
                track_ids,
                paths,
                sample_rate,
                max_seconds,
                pcm_path,
                index_path,
                skipped_path,
                workers,
                progress,
            )
            index = _open_index(index_path, pcm_path)
            if index is None:
                raise RuntimeError(f"{index_path}: cache was written but cannot be read back")
    finally:
        lock.release()
    offsets = {
        str(t): (int(o), int(n))
        for t, o, n in zip(index["track_id"], index["offset"], index["length"], strict=True)
    }
    return AudioCache(
        pcm_path=pcm_path,
        offsets=offsets,
        skipped=_read_skipped(skipped_path),
        sample_rate=sample_rate,
        built=built,
    )


def _open_index(index_path: Path, pcm_path: Path) -> np.ndarray | None:
    """The index of a complete cache, or ``None`` when it is missing or does not match the PCM."""
    if not index_path.is_file() or not pcm_path.is_file():
        return None
    try:
        index = np.load(index_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); rebuilding the cache", index_path, err)
        return None
    expected = int(index["length"].sum()) * np.dtype(np.int16).itemsize
    if pcm_path.stat().st_size != expected:
        log.warning("%s: size does not match its index; rebuilding the cache", pcm_path)
        return None
    return index


def _read_skipped(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame({c: [] for c in SKIPPED_COLUMNS}, dtype=str)
    # keep_default_na=False: a track id such as "NA" stays a string.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _build(
    track_ids: list[str],
    paths: list[str],
    sample_rate: int,
    max_seconds: float | None,
    pcm_path: Path,
    index_path: Path,
    skipped_path: Path,
    workers: int,
    progress: bool,
) -> None:
    kept: list[tuple[str, int, int]] = []
    skipped: list[dict[str, str]] = []
    offset = 0
    decoded = _decode_in_order(paths, sample_rate, max_seconds, workers)
    with atomic_open(pcm_path, "wb") as out:
        if True:  # (kept one level deeper: the loop below writes into ``out``)
            bar = tqdm(
                zip(track_ids, paths, decoded, strict=True),
                total=len(paths),
                desc="decoding audio",
                unit="clip",
                disable=not progress,
            )
            for track_id, path, result in bar:
                if isinstance(result, str):
                    skipped.append({"track_id": track_id, "audio_path": path, "reason": result})
                    continue
                out.write(result.tobytes())
                kept.append((track_id, offset, len(result)))
                offset += len(result)
    with atomic_open(skipped_path, "w", newline="") as f:
        pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_csv(f, index=False)
    width = max([len(t) for t, _, _ in kept], default=1)
    index = np.array(kept, dtype=[("track_id", f"<U{width}"), ("offset", "<i8"), ("length", "<i8")])
    with atomic_open(index_path, "wb") as f:  # written last: marks the cache complete
        np.save(f, index, allow_pickle=False)
    log.info(
        "cache %s: %d clips, %.1f min of audio, %d skipped",
        pcm_path.name,
        len(kept),
        offset / sample_rate / 60,
        len(skipped),
    )
