"""Library throughput and long-file memory: the rows of ``make bench`` a user with a music
collection asks about.

* **files per second** and **CPU seconds per file** of :func:`~.inference.folder_table.tag_library`
  (the code behind ``predict_clip.py FOLDER --out tags.csv``) on a folder of generated 30 s
  44.1 kHz stereo files, a third each mp3, m4a (AAC, through PyAV) and flac, on ``cores`` cores
  (the process is pinned to them, torch uses as many threads), warm: the model is loaded and
  every file was read once before the clock starts. Measured with decoding in threads (the
  default) and with ``workers`` decode processes.
* the same files through **musicnn's own extractor** (``musicnn.extractor.extractor(file,
  model="MSD_musicnn")``), when the optional extra is installed, in a subprocess so TensorFlow
  never enters this one; the ratio of the two rates is the headline.
* the **peak RSS** of ``scripts/predict_clip.py`` tagging a generated 2-hour file (44.1 kHz
  stereo flac), from ``/usr/bin/time -v`` (else ``getrusage(RUSAGE_CHILDREN)``), next to the
  same command on a 30 s file: the difference is what the length costs (streamed decoding
  should make it ~0).

Generated audio is kept in ``<work_dir>/library`` and reused by later runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lightning_module.benchmark.fixtures import write_long_file, write_songs
from lightning_module.benchmark.measure import PREDICT_SCRIPT, REPO_ROOT, children_cpu, run_child
from lightning_module.inference.folder_table import tag_library
from lightning_module.inference.tagger import Tagger

FORMATS = ("mp3", "m4a", "flac")


@dataclass
class LibraryBenchConfig:
    """What the library rows measure.

    Args:
        files: generated files in the folder (a third each of mp3, m4a, flac).
        seconds: length of each file.
        cores: CPU cores the measurement is pinned to (and torch threads).
        workers: decode processes of the second run (0: skip it).
        musicnn_files: how many of the files musicnn's extractor tags (``None``: all; 0: skip).
        long_seconds: length of the long file whose peak RSS is measured (0: skip).
    """

    files: int = 200
    seconds: float = 30.0
    cores: int = 2
    workers: int = 2
    musicnn_files: int | None = None
    long_seconds: float = 7200.0


# -- measurements -------------------------------------------------------------------------------
@contextlib.contextmanager
def pinned(cores: int) -> Iterator[int]:
    """Run on at most ``cores`` CPUs (affinity, inherited by subprocesses) with as many torch
    threads; yields the number of cores actually used."""
    threads = torch.get_num_threads()
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    use = sorted(before)[:cores] if before else list(range(cores))
    if before:
        _set_affinity(use)
    torch.set_num_threads(len(use))
    try:
        yield len(use)
    finally:
        torch.set_num_threads(threads)
        if before:
            _set_affinity(before)


def _set_affinity(cpus: Any) -> None:
    """Affinity of every thread of this process (``sched_setaffinity(0)`` moves only the
    calling thread; torch's OpenMP pool already exists)."""
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, cpus)


def _tag_folder(tagger: Tagger, folder: Path, workers: int) -> dict[str, Any]:
    start, cpu, children = time.perf_counter(), time.process_time(), children_cpu()
    report = tag_library(tagger, folder, io.StringIO(), progress=False, workers=workers)
    wall = time.perf_counter() - start
    # process_time counts every thread of this process; decode workers are children, reaped
    # when the pool shuts down.
    cpu_s = time.process_time() - cpu + children_cpu() - children
    n = report.tagged
    if report.skipped:
        raise RuntimeError(f"library benchmark: {report.summary()}")
    return {
        "workers": workers,
        "files": n,
        "wall_seconds": wall,
        "cpu_seconds": cpu_s,
        "files_per_second": n / wall,
        "cpu_seconds_per_file": cpu_s / n,
    }


_MUSICNN_SCRIPT = r"""
import contextlib, json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import warnings
warnings.filterwarnings("ignore")
from musicnn.extractor import extractor
files = sys.argv[1:]
def tag(path):
    with contextlib.redirect_stdout(sys.stderr):  # musicnn prints progress on stdout
        extractor(path, model="MSD_musicnn", extract_features=False)
tag(files[0])  # warm: TensorFlow imported, librosa's caches filled
ok, failed, start, cpu = 0, [], time.perf_counter(), time.process_time()
for path in files:
    try:
        tag(path)
        ok += 1
    except Exception as err:
        failed.append(f"{path}: {type(err).__name__}: {err}".splitlines()[0])
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"files": ok, "failed": failed, "wall_seconds": wall, "cpu_seconds": cpu}))
"""


def measure_musicnn(files: list[Path]) -> dict[str, Any]:
    """musicnn's extractor over ``files`` in a fresh process (TensorFlow stays out of ours).
    Files it cannot read (librosa needs an ffmpeg binary for m4a) are counted, not timed."""
    done = subprocess.run(
        [sys.executable, "-c", _MUSICNN_SCRIPT, *map(str, files)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"musicnn extractor failed ({done.returncode}): {last}")
    result = json.loads(lines[-1])
    n = max(result["files"], 1)
    result.update(
        files_per_second=result["files"] / result["wall_seconds"],
        cpu_seconds_per_file=result["cpu_seconds"] / n,
    )
    return result


def peak_rss_mb(command: list[str]) -> tuple[float, str, float]:
    """Peak RSS (MiB) of a fresh process running ``command``, how it was measured, wall seconds
    (see :func:`~lightning_module.benchmark.measure.run_child`)."""
    run = run_child(command, rss=True)
    if run.done.returncode != 0:
        lines = [line for line in run.done.stderr.splitlines() if line.startswith("error:")]
        raise RuntimeError(f"{' '.join(command[-3:])} failed: {(lines or ['?'])[-1]}")
    return run.peak_rss_mb, run.rss_measured_with, run.wall_seconds


def measure_library(
    checkpoint: Path, work_dir: Path, cfg: LibraryBenchConfig, device: str = "cpu"
) -> dict[str, Any]:
    """Every library row (see the module docstring), JSON-ready."""
    folder = work_dir / "library" / f"{cfg.files}x{cfg.seconds:g}s"
    start = time.perf_counter()
    files = write_songs(folder, cfg.files, cfg.seconds, FORMATS)
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "folder": str(folder),
        "formats": list(FORMATS),
        "generate_seconds": time.perf_counter() - start,
    }
    with pinned(cfg.cores) as cores:
        result["cores"] = cores
        tagger = Tagger.from_checkpoint(checkpoint, device=device)
        for path in files:  # page cache warm: the measurement is decoding, not the disk
            path.read_bytes()
        tag_library(tagger, folder, io.StringIO(), progress=False)  # warm-up: kernels, imports
        runs = [_tag_folder(tagger, folder, 0)]
        if cfg.workers:
            runs.append(_tag_folder(tagger, folder, cfg.workers))
        result["runs"] = runs
        n_musicnn = cfg.files if cfg.musicnn_files is None else min(cfg.musicnn_files, cfg.files)
        if n_musicnn and importlib.util.find_spec("musicnn") is not None:
            musicnn = measure_musicnn(files[:n_musicnn])
            musicnn["ratio_ours_over_musicnn"] = (
                runs[0]["files_per_second"] / musicnn["files_per_second"]
                if musicnn["files"]
                else None
            )
            result["musicnn"] = musicnn
        else:
            result["musicnn"] = None  # not installed (make musicnn) or skipped
        if cfg.long_seconds:
            long = write_long_file(work_dir / f"long{cfg.long_seconds:g}s.flac", cfg.long_seconds)
            base = [sys.executable, str(PREDICT_SCRIPT), "--checkpoint", str(checkpoint)]
            short_rss, how, short_wall = peak_rss_mb([*base, str(files[FORMATS.index("flac")])])
            long_rss, _, long_wall = peak_rss_mb([*base, str(long)])
            result["long_file"] = {
                "seconds": cfg.long_seconds,
                "format": "flac 44.1 kHz stereo",
                "bytes": long.stat().st_size,
                "peak_rss_mb": long_rss,
                "wall_seconds": long_wall,
                "peak_rss_mb_30s_file": short_rss,
                "wall_seconds_30s_file": short_wall,
                "measured_with": how,
            }
    return result


def library_rows(lib: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows of :func:`measure_library` (empty when it did not run)."""
    if not lib:
        return []
    cfg = lib["config"]
    what = f"{cfg['files']} x {cfg['seconds']:g} s mp3/m4a/flac, {lib['cores']} cores, warm"
    rows = []
    for run in lib["runs"]:
        how = f"{run['workers']} decode processes" if run["workers"] else "decode threads"
        rows.append(
            (
                "folder",
                f"tag_library ({what}, {how})",
                f"{run['files_per_second']:.2f} files/s, CPU {run['cpu_seconds_per_file']:.3f}"
                " s/file",
            )
        )
    musicnn = lib.get("musicnn")
    if musicnn:
        failed = f", {len(musicnn['failed'])} unreadable" if musicnn["failed"] else ""
        ratio = musicnn["ratio_ours_over_musicnn"]
        rows.append(
            (
                "folder",
                f"musicnn extractor MSD_musicnn ({musicnn['files']} of the files{failed})",
                f"{musicnn['files_per_second']:.2f} files/s, CPU "
                f"{musicnn['cpu_seconds_per_file']:.3f} s/file"
                + (f" (ours {ratio:.1f}x the files/s)" if ratio else ""),
            )
        )
    long = lib.get("long_file")
    if long:
        rows.append(
            (
                "folder",
                f"predict_clip.py peak RSS, {long['seconds'] / 3600:g} h {long['format']}",
                f"{long['peak_rss_mb']:,.0f} MiB ({long['wall_seconds']:.0f} s; 30 s file "
                f"{long['peak_rss_mb_30s_file']:,.0f} MiB; {long['measured_with']})",
            )
        )
    return rows
