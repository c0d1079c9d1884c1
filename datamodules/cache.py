"""Decode every manifest row once into one int16 memory-mapped PCM file.

MP3 decoding runs at tens of clips per second per core and would starve a GPU, so training and
evaluation read random crops straight from this cache instead of decoding files.

Layout in ``cache_dir`` (``KEY`` is a hash of the rows' paths, sizes, mtimes and the sample rate):

* ``KEY.pcm``       all clips back to back, int16 mono at the model's sample rate
* ``KEY.index.csv`` track_id, offset, length (samples) of every decoded clip
* ``KEY.skipped.csv`` track_id, audio_path, reason for every file that could not be decoded

The index is written last (atomically), so its presence means the cache is complete. A file lock
makes concurrent builders (DDP ranks, two processes) build once: the first builds, the rest wait.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from tqdm.auto import tqdm

from datamodules.audio import AudioError, load_audio

log = logging.getLogger(__name__)

CACHE_VERSION = 1
INT16_SCALE = 32767.0


@dataclass
class AudioCache:
    """Read-only view of a built cache. Opens the memmap lazily so it pickles cheaply to workers."""

    pcm_path: Path
    offsets: dict[str, tuple[int, int]]  # track_id -> (offset, length) in samples
    skipped: pd.DataFrame  # track_id, audio_path, reason
    sample_rate: int

    def __post_init__(self) -> None:
        self._pcm: np.memmap | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pcm"] = None  # each worker maps the file itself
        return state

    @property
    def pcm(self) -> np.ndarray:
        if self._pcm is None:
            if self.pcm_path.stat().st_size == 0:
                self._pcm = np.zeros(0, dtype=np.int16)
            else:
                self._pcm = np.memmap(self.pcm_path, dtype=np.int16, mode="r")
        return self._pcm

    def __contains__(self, track_id: str) -> bool:
        return track_id in self.offsets

    def length(self, track_id: str) -> int:
        """Clip length in samples."""
        return self.offsets[track_id][1]

    def read(self, track_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples [start, start + length) of a clip, float32 in [-1, 1]; shorter at its end."""
        offset, total = self.offsets[track_id]
        start = min(max(start, 0), total)
        stop = total if length is None else min(start + length, total)
        return self.pcm[offset + start : offset + stop].astype(np.float32) / INT16_SCALE


def cache_key(paths: Sequence[str], track_ids: Sequence[str], sample_rate: int) -> str:
    """Hash of what determines the cache content: ids, paths, file sizes and mtimes, sample rate."""
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{sample_rate}".encode())
    for track_id, path in zip(track_ids, paths, strict=True):
        try:
            stat = os.stat(path)
            signature = f"{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            signature = "missing"
        digest.update(f"|{track_id}|{path}|{signature}".encode())
    return digest.hexdigest()[:16]


def _decode(path: str, sample_rate: int) -> np.ndarray | str:
    """int16 samples of ``path``, or the reason it could not be decoded."""
    try:
        wave = load_audio(path, sample_rate, min_duration=0.1)
    except AudioError as err:
        return str(err)
    except Exception as err:  # never let one bad file stop the build
        return f"{path}: {type(err).__name__}: {err}"
    return np.round(wave.numpy() * INT16_SCALE).astype(np.int16)


def build_cache(
    manifest: pd.DataFrame,
    cache_dir: str | os.PathLike,
    sample_rate: int,
    num_workers: int | None = None,
    progress: bool = True,
) -> AudioCache:
    """Return the cache for ``manifest`` rows (absolute ``audio_path``), building it if needed.

    Decoding runs in a thread pool: libsndfile and torch release the GIL, and threads avoid
    forking a process that has already started torch's thread pools.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    track_ids = manifest["track_id"].astype(str).tolist()
    paths = manifest["audio_path"].astype(str).tolist()
    key = cache_key(paths, track_ids, sample_rate)
    pcm_path = cache_dir / f"{key}.pcm"
    index_path = cache_dir / f"{key}.index.csv"
    skipped_path = cache_dir / f"{key}.skipped.csv"
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not index_path.is_file():
            _build(
                track_ids,
                paths,
                sample_rate,
                pcm_path,
                index_path,
                skipped_path,
                num_workers,
                progress,
            )
    index = pd.read_csv(index_path, dtype={"track_id": str})
    skipped = pd.read_csv(skipped_path, dtype=str) if skipped_path.is_file() else _no_skips()
    offsets = {
        t: (int(o), int(n))
        for t, o, n in zip(index["track_id"], index["offset"], index["length"], strict=True)
    }
    return AudioCache(pcm_path=pcm_path, offsets=offsets, skipped=skipped, sample_rate=sample_rate)


def _no_skips() -> pd.DataFrame:
    return pd.DataFrame({"track_id": [], "audio_path": [], "reason": []}, dtype=str)


def _build(
    track_ids: list[str],
    paths: list[str],
    sample_rate: int,
    pcm_path: Path,
    index_path: Path,
    skipped_path: Path,
    num_workers: int | None,
    progress: bool,
) -> None:
    workers = num_workers or min(8, os.cpu_count() or 1)
    tmp_pcm = pcm_path.with_suffix(".pcm.tmp")
    rows, skipped, offset = [], [], 0
    with open(tmp_pcm, "wb") as out, ThreadPoolExecutor(workers) as pool:
        decoded = pool.map(_decode, paths, [sample_rate] * len(paths))
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
            rows.append({"track_id": track_id, "offset": offset, "length": len(result)})
            offset += len(result)
    os.replace(tmp_pcm, pcm_path)
    skipped_frame = pd.DataFrame(skipped) if skipped else _no_skips()
    skipped_frame.to_csv(skipped_path.with_suffix(".tmp"), index=False)
    os.replace(skipped_path.with_suffix(".tmp"), skipped_path)
    index = pd.DataFrame(rows, columns=["track_id", "offset", "length"])
    index.to_csv(index_path.with_suffix(".tmp"), index=False)
    os.replace(index_path.with_suffix(".tmp"), index_path)  # written last: marks the cache complete
    log.info(
        "cache %s: %d clips, %.1f min of audio, %d skipped",
        pcm_path.name,
        len(rows),
        offset / sample_rate / 60,
        len(skipped),
    )
