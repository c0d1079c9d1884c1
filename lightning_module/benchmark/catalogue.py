"""The catalogue rows (issue 29): Ray Data on this machine against the folder run, same files.

* **folder run**: :func:`~lightning_module.inference.folder_table.tag_library` with ``workers``
  decode processes (what ``audiotagger tag FOLDER --out tags.csv --workers N`` runs), the
  shipped ONNX model, timed from loading the model to the last row written.
* **Ray, N workers**: :func:`~lightning_module.catalogue.run.tag_catalogue` on a local Ray of N
  CPUs (``ray.init(num_cpus=N)``), N actors of half a CPU and decode tasks of half a CPU
  (:class:`~lightning_module.catalogue.pipeline.Scale`), timed the same way: actor start and
  model load included, Ray's own start (reported beside it) not, since a cluster pays it once.
* Every run is pinned to its cores (CPU affinity, inherited by Ray's processes and the decode
  workers): Ray's CPU counts are only bookkeeping, so without it "1 CPU" would use both.
* Runs are interleaved (folder, Ray N, Ray 1, Ray N, folder) so that the load of a shared
  machine drifts over all of them alike; each rate is the mean of its runs.

The files: the first ``files`` 30 s clips of ``../shared/data/gtzan3`` (real music, 16 kHz mono
Ogg Vorbis), linked (never copied) into ``<work_dir>/catalogue/clips``; without that data,
generated 30 s 44.1 kHz stereo mp3/m4a/flac files (``library_speed.write_library``). Every file
is read once before the clock starts (page cache), as in the other rows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def bench_files(work_dir: Path, files: int) -> tuple[Path, str]:
    """A folder of ``files`` clips (links to real clips, or generated) and what they are."""
    folder = Path(work_dir) / "catalogue" / "clips"
    real = sorted((SHARED / "gtzan3").glob("*/*.ogg"))[:files]
    if os.environ.get("SHARED_DATA") != "" and len(real) == files:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for clip in real:
            (folder / clip.name).symlink_to(clip)
        return folder, f"{files} real 30 s clips of gtzan3 (16 kHz mono Ogg Vorbis, linked)"
    from lightning_module.benchmark.library_speed import write_library  # generated audio

    write_library(folder, files, 30.0)
    return folder, f"{files} generated 30 s 44.1 kHz stereo files (mp3, m4a, flac)"


def _cores(n: int) -> set[int]:
    """The first ``n`` CPUs this process may use."""
    return set(sorted(os.sched_getaffinity(0))[:n])


def _pin(cpus: set[int]) -> None:
    """Every thread of this process onto ``cpus``; processes started afterwards inherit it (Ray's
    raylet and workers, the folder run's decode workers), so N workers really get N cores."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)


def _read_all(folder: Path) -> None:
    for path in folder.iterdir():
        path.read_bytes()


def _folder_run(folder: Path, out: Path, workers: int) -> float:
    """Seconds of the folder run, in a fresh ``python -c`` process: its decode workers are
    spawned, and a spawned child imports the parent's main module (here that would be the
    benchmark script and the training stack it imports; ``audiotagger tag`` is light)."""
    code = (
        "import sys; from lightning_module.benchmark.catalogue import folder_run_seconds, _pin, "
        "_cores; _pin(_cores(int(sys.argv[3]))); "
        "print(folder_run_seconds(sys.argv[1], sys.argv[2], int(sys.argv[3])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(out), str(workers)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def folder_run_seconds(folder: str | Path, out: str | Path, workers: int) -> float:
    """What :func:`_folder_run` times, in this process (loading the model included)."""
    from lightning_module.inference.folder_table import tag_library
    from lightning_module.inference.tagger import Tagger, default_model

    folder, out = Path(folder), Path(out)
    out.unlink(missing_ok=True)
    Path(str(out) + ".state.json").unlink(missing_ok=True)
    start = time.perf_counter()
    tagger = Tagger.from_file(default_model())
    report = tag_library(tagger, folder, out=out, model=default_model(), workers=workers,
                         progress=False)  # fmt: skip
    assert report.tagged, report.summary()
    return time.perf_counter() - start


def _ray_run(folder: Path, out: Path, workers: int) -> tuple[float, float]:
    """(seconds of the run, seconds Ray took to start) with ``workers`` CPUs."""
    import ray

    from lightning_module.catalogue.pipeline import Scale
    from lightning_module.catalogue.run import CatalogueRun, tag_catalogue
    from lightning_module.inference.tagger import default_model

    shutil.rmtree(out, ignore_errors=True)
    before = os.sched_getaffinity(0)
    _pin(_cores(workers))
    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")  # fmt: skip
    started = time.perf_counter() - start
    try:
        scale = Scale(actors=workers, cpus_per_actor=0.5, cpus_per_task=0.5)
        run = CatalogueRun(folder, out, default_model(), scale=scale)
        start = time.perf_counter()
        report = tag_catalogue(run, progress=False)
        assert report.tagged, report.summary()
        return time.perf_counter() - start, started
    finally:
        ray.shutdown()
        _pin(before)


def cpu_per_file(folder: Path, files: int = 20) -> dict[str, float]:
    """CPU seconds per file of the two stages, in this process, one thread each (what the 10 M
    plan in docs/scale.md scales from; CPU time moves much less than wall time with the load
    of a shared machine): ``decode`` (``decode_windows``: decode, resample, window) and
    ``model`` (the shipped ONNX model on those windows, batches of 16), plus ``windows``, the
    mean windows per file."""
    import numpy as np

    from lightning_module.inference.runners import OnnxRunner
    from lightning_module.inference.shipped import default_model
    from lightning_module.inference.streaming import decode_windows
    from lightning_module.inference.tagger import Tagger

    runner = OnnxRunner(default_model(), threads=1)
    tagger = Tagger(runner, runner.hparams)
    paths = sorted(folder.iterdir())[:files]
    start = time.process_time()
    decoded = [
        decode_windows(str(p), tagger.sample_rate, tagger.window, tagger.hop,
                       tagger.max_windows, 0.0, None)
        for p in paths
    ]  # fmt: skip
    decode = (time.process_time() - start) / len(paths)
    windows = np.concatenate([d.windows for d in decoded if not isinstance(d, Exception)])
    start = time.process_time()
    for i in range(0, len(windows) - 15, 16):
        runner(windows[i : i + 16])
    per_window = (time.process_time() - start) / (len(windows) // 16 * 16)
    per_file = len(windows) / len(paths)
    return {"decode": decode, "model": per_window * per_file, "model_per_window": per_window,
            "windows": per_file}  # fmt: skip


def measure_catalogue(work_dir: Path, files: int = 200, workers: int = 2) -> dict[str, Any]:
    """The rows' numbers (see the module docstring) as a JSON-ready dict."""
    folder, what = bench_files(work_dir, files)
    _read_all(folder)
    runs: dict[str, list[float]] = {"folder": [], f"ray{workers}": [], "ray1": []}
    ray_start: list[float] = []
    outs = Path(work_dir) / "catalogue"
    load = [os.getloadavg()[0]]
    for kind in ("folder", f"ray{workers}", "ray1", f"ray{workers}", "folder"):
        if kind == "folder":
            runs[kind].append(_folder_run(folder, outs / "folder.csv", workers))
        else:
            n = int(kind[3:])
            seconds, started = _ray_run(folder, outs / f"out-{kind}", n)
            runs[kind].append(seconds)
            ray_start.append(started)
        load.append(os.getloadavg()[0])
    rate = {k: files / statistics.mean(v) for k, v in runs.items()}
    return {
        "cpu_seconds_per_file": cpu_per_file(folder),
        "files": what,
        "workers": workers,
        "seconds": runs,
        "files_per_s": rate,
        "ray_start_seconds": ray_start,
        "ray_vs_folder": rate[f"ray{workers}"] / rate["folder"],
        "ray_scaling_1_to_n": rate[f"ray{workers}"] / rate["ray1"],
        "files_per_s_per_core": {
            "folder": rate["folder"] / workers,
            "ray": rate[f"ray{workers}"] / workers,
            "ray1": rate["ray1"],
        },  # fmt: skip
        "load_average_1min": load,
        "cpu_count": os.cpu_count(),
    }


def catalogue_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(row name, value) lines for the table."""
    n, rate = result["workers"], result["files_per_s"]
    runs = result["seconds"]

    def each(kind: str) -> str:
        return ", ".join(f"{s:.1f}" for s in runs[kind])

    def joined(values: Any, fmt: str) -> str:
        return ", ".join(fmt.format(*v) if isinstance(v, tuple) else fmt.format(v) for v in values)

    per_core = result["files_per_s_per_core"].items()
    return [
        ("catalogue files", result["files"]),
        ("CPU s per file, one thread", joined(result["cpu_seconds_per_file"].items(), "{} {:.4f}")),
        (f"folder run --workers {n}", f"{rate['folder']:.2f} files/s (runs {each('folder')} s)"),
        (f"Ray local, {n} CPUs", f"{rate[f'ray{n}']:.2f} files/s (runs {each(f'ray{n}')} s)"),
        ("Ray local, 1 CPU", f"{rate['ray1']:.2f} files/s (runs {each('ray1')} s)"),
        ("Ray vs folder run", f"{result['ray_vs_folder']:.2f}x (target >= 0.9x)"),
        (f"Ray scaling 1 -> {n} CPUs", f"{result['ray_scaling_1_to_n']:.2f}x"),
        ("Ray start (not in the runs)", joined(result["ray_start_seconds"], "{:.1f} s")),
        ("files/s per CPU core", joined(per_core, "{} {:.2f}")),
        ("load average (1 min) over the runs", joined(result["load_average_1min"], "{:.1f}")),
    ]
