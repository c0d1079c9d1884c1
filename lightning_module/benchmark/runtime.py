"""The torch-free runtime (issue 25) against the PyTorch path, each target one ratio of one run.

* **install size**: ``site-packages`` of a runtime-only venv (``python -m venv`` + ``pip install
  <repo>``, no extras; built once into ``<work_dir>/runtime/venv``, rebuilt when
  ``pyproject.toml`` changes, this checkout's code reinstalled into it every run) against the full
  venv (the one running the benchmark: torch and every extra), MB each and the ratio;
* **cold start**: wall time of ``audiotagger tag song.mp3 --onnx model.onnx`` in the runtime venv
  against ``scripts/predict_clip.py song.mp3 --checkpoint x.ckpt`` in the full venv, fresh
  processes, interleaved (one untimed run of each first: page cache), medians and their ratio;
* **peak RSS** of the runtime command tagging a generated 2-hour 44.1 kHz stereo flac, next to
  the same command on a 30 s file (``/usr/bin/time -v``);
* **warm files/s** of :meth:`Tagger.predict_files` over a folder of generated 30 s 44.1 kHz
  stereo mp3s, in this process, interleaved: the ONNX model (onnxruntime), the same checkpoint
  with PyTorch, and two decode-only floors on the same files with the same decode thread pool
  (``ThreadPoolExecutor``, ``decode_workers`` threads): :func:`stream_audio` alone (decode +
  resample) and ``decode_windows`` (what a decode thread of ``predict_files`` does: header,
  decode + resample, window picking). The ONNX run also reports the seconds spent inside the
  runner (the forward passes).

The ONNX model is exported from the checkpoint (``scripts/export_onnx.py``, cached in the work
dir), so both paths run the same weights. Until ``datamodules.audio`` stops importing torch the
runtime venv cannot tag; the cold and memory rows then run the ONNX command in the full venv and
say so (``runtime_venv_error``). Subprocesses get this checkout on ``PYTHONPATH`` (full venv) or
none at all (runtime venv: its installed copy), and the same ``OMP_WAIT_POLICY``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_module.benchmark.measure import (
    PREDICT_SCRIPT,
    REPO_ROOT,
    last_line,
    run_child,
)

EXPORT_SCRIPT = REPO_ROOT / "scripts" / "export_onnx.py"


@dataclass
class RuntimeBenchConfig:
    """What the runtime rows measure.

    Args:
        work_dir: generated audio, the exported model and the cached runtime venv land here.
        checkpoint: the model of the PyTorch path; exported to ONNX for the runtime path.
        files: 30 s mp3s of the folder rows.
        seconds: length of each of them (and of the cold-start clip).
        repeats: timed passes of each folder measurement (medians reported).
        cold_runs: fresh processes of each command in the cold-start row.
        long_seconds: length of the file whose peak RSS is measured (0: skip).
        venv: build and use the runtime venv (needs the package index); ``False`` skips the
            install row and runs the runtime command in ``full_venv``.
        full_venv: the venv of the PyTorch path and of the size comparison (default: this one).
        decode_workers: decode threads of ``predict_files`` and of the floors.
    """

    work_dir: Path = Path("data/bench")
    checkpoint: Path | None = None
    files: int = 20
    seconds: float = 30.0
    repeats: int = 3
    cold_runs: int = 5
    long_seconds: float = 7200.0
    venv: bool = True
    full_venv: Path | None = None
    decode_workers: int = 2


# -- helpers ------------------------------------------------------------------------------------
def _env(pythonpath: Path | None) -> dict[str, str]:
    """The environment of a measured subprocess: no inherited PYTHONPATH/VIRTUAL_ENV (a runtime
    venv must import its own installed copy), the same OMP_WAIT_POLICY for every command."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def site_packages(venv: Path) -> Path:
    found = sorted(Path(venv).glob("lib/python*/site-packages"))
    if not found:
        raise RuntimeError(f"{venv}: no lib/python*/site-packages")
    return found[0]


def disk_mb(path: Path) -> float:
    """Disk usage of a tree in MB (10^6 bytes), as ``du`` counts it: allocated blocks, each
    hard-linked file once, symlinks not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total / 1e6


def _largest(site: Path, count: int = 5) -> list[tuple[str, float]]:
    sizes = [
        (p.name, disk_mb(p))
        for p in site.iterdir()
        if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))
    ]
    return [(n, round(mb, 1)) for n, mb in sorted(sizes, key=lambda x: -x[1])[:count]]


def ensure_runtime_venv(work_dir: Path, repo: Path = REPO_ROOT) -> dict[str, Any]:
    """The runtime-only venv: ``pip install <repo>`` with no extras into
    ``<work_dir>/runtime/venv``. Dependencies are cached (rebuilt when ``pyproject.toml``
    changes); this checkout's code is reinstalled every time (``--no-deps``), so the venv runs
    the code being measured."""
    venv = Path(work_dir) / "runtime" / "venv"
    stamp = venv / "pyproject.sha256"
    want = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()
    start = time.perf_counter()
    built = not (stamp.is_file() and stamp.read_text() == want)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    if built:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        command = [*pip, str(repo)]
    else:
        command = [*pip, "--no-deps", "--force-reinstall", str(repo)]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(None), cwd=venv)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {repo} failed: {last_line(done.stderr)}")
    if built:
        stamp.write_text(want)
    return {"venv": str(venv), "built": built, "seconds": time.perf_counter() - start}


def runtime_import_error(python: Path, cwd: Path) -> str | None:
    """None when ``python`` can import the tagging path without torch, else why not."""
    code = (
        "import sys, lightning_module.inference.tagger, lightning_module.commands.tag\n"
        "assert 'torch' not in sys.modules, 'imported torch'"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, env=_env(None), cwd=cwd
    )
    return None if done.returncode == 0 else last_line(done.stderr)


def export_onnx(checkpoint: Path, work_dir: Path) -> Path:
    """``checkpoint`` exported with ``scripts/export_onnx.py`` (cached by path, size, mtime)."""
    st = checkpoint.stat()
    key = hashlib.sha256(f"{checkpoint.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = Path(work_dir) / "runtime" / f"{checkpoint.stem}-{key.hexdigest()[:10]}.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(EXPORT_SCRIPT), "--checkpoint", str(checkpoint)]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, env=_env(REPO_ROOT)
    )
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"export_onnx.py failed: {last_line(done.stderr)}")
    return out


def write_mp3s(folder: Path, files: int, seconds: float) -> list[Path]:
    """``files`` generated 44.1 kHz stereo mp3s (variations of a few rendered songs), kept."""
    from lightning_module.benchmark.fixtures import write_songs

    return write_songs(folder, files, seconds, ("mp3",))


def _run(command: list[str], env: dict[str, str], cwd: Path, rss: bool = False) -> dict:
    """Wall seconds (and peak RSS in MiB with ``rss``) of a fresh process."""
    run = run_child(command, cwd=cwd, env=env, rss=rss)
    if run.done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed: {last_line(run.done.stderr)}")
    result: dict[str, Any] = {"wall_seconds": run.wall_seconds}
    if rss:
        result["peak_rss_mb"], result["measured_with"] = run.peak_rss_mb, run.rss_measured_with
    return result


# -- the folder rows: one process, interleaved ---------------------------------------------------
class _TimedRunner:
    """Wraps a runner and adds up the seconds spent in it (the forward passes)."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.seconds, self.calls, self.windows = runner, 0.0, 0, 0

    def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        out = self.runner(windows)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.windows += len(windows)
        return out


def _stream_only(path: str, sample_rate: int) -> int:
    from datamodules.audio import stream_audio

    return sum(int(block.shape[-1]) for block in stream_audio(path, sample_rate))


def measure_folder(
    onnx: Path, checkpoint: Path, files: list[Path], repeats: int, workers: int
) -> dict[str, Any]:
    """Warm files/s of ``predict_files`` (ONNX, PyTorch) and of the decode-only floors, the
    same files and decode threads, interleaved ``repeats`` times; medians."""
    from lightning_module.inference.streaming import decode_windows
    from lightning_module.inference.tagger import Tagger

    onnx_tagger = Tagger.from_onnx(onnx)
    torch_tagger = Tagger.from_checkpoint(checkpoint)
    timed = _TimedRunner(onnx_tagger.runner)
    onnx_tagger.runner = timed
    t = onnx_tagger
    names = [str(p) for p in files]
    window_args = (t.sample_rate, t.window, t.hop, t.max_windows, 0.0, None)

    def tag(tagger: Tagger) -> None:
        for result in tagger.predict_files(names, decode_workers=workers):
            if not hasattr(result, "genre"):
                raise RuntimeError(f"runtime benchmark: {result}")

    def floor(fn: Any, *args: Any) -> None:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            list(pool.map(lambda name: fn(name, *args), names))

    runs = {
        "onnx": lambda: tag(onnx_tagger),
        "torch": lambda: tag(torch_tagger),
        "floor_decode": lambda: floor(_stream_only, t.sample_rate),
        "floor_windows": lambda: floor(decode_windows, *window_args),
    }
    for path in files:  # page cache warm: the measurement is decoding, not the disk
        path.read_bytes()
    for fn in runs.values():  # warm-up: imports, kernels, allocations
        fn()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    forward: list[float] = []
    for _ in range(repeats):
        for name, fn in runs.items():
            timed.seconds = 0.0
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if name == "onnx":
                forward.append(timed.seconds)
    n = len(files)
    result: dict[str, Any] = {
        "files": n,
        "decode_workers": workers,
        # windows per pass through the runner, padding of the last batch included
        "forward_windows_per_pass": timed.windows / (repeats + 1),
        "forward_calls_per_pass": timed.calls / (repeats + 1),
        "batch_size": onnx_tagger.batch_size,
    }
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        result[name] = {
            "files_per_second": n / w,
            "wall_seconds": w,
            "cpu_seconds_per_file": c / n,
            "wall_runs": wall[name],
        }
    result["onnx"]["forward_seconds"] = statistics.median(forward)
    fps = {k: result[k]["files_per_second"] for k in runs}
    result["ratio_onnx_over_torch"] = fps["onnx"] / fps["torch"]
    result["ratio_onnx_over_floor"] = fps["onnx"] / fps["floor_decode"]
    result["ratio_torch_over_floor"] = fps["torch"] / fps["floor_decode"]
    result["ratio_windows_floor_over_floor"] = fps["floor_windows"] / fps["floor_decode"]
    result["threads"] = _thread_counts(onnx_tagger)
    return result


def _thread_counts(tagger: Any) -> dict[str, Any]:
    import onnxruntime as ort

    options = tagger.runner.runner.session.get_session_options()
    info: dict[str, Any] = {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "onnxruntime_intra_op": options.intra_op_num_threads or "default (physical cores)",
        "onnxruntime": ort.__version__,
    }
    if "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].get_num_threads()
    return info


# -- everything ----------------------------------------------------------------------------------
def measure_runtime(cfg: RuntimeBenchConfig, say: Any = print) -> dict[str, Any]:
    """Every runtime row (see the module docstring), JSON-ready."""
    from lightning_module.benchmark.fixtures import write_long_file

    if cfg.checkpoint is None:
        raise ValueError("the runtime rows need a checkpoint (--checkpoint): the PyTorch path")
    work = Path(cfg.work_dir).resolve()
    (work / "runtime").mkdir(parents=True, exist_ok=True)
    checkpoint = Path(cfg.checkpoint).resolve()
    full_venv = Path(cfg.full_venv or sys.prefix)
    full_python = full_venv / "bin" / "python"
    result: dict[str, Any] = {"config": json.loads(json.dumps(asdict(cfg), default=str))}
    result["config"]["full_venv"] = str(full_venv)
    say("runtime: exporting the checkpoint to ONNX ...", flush=True)
    onnx = export_onnx(checkpoint, work)
    result["onnx"] = str(onnx)

    # 1. install size
    runtime_python, pythonpath = full_python, REPO_ROOT
    if cfg.venv:
        say("runtime: the runtime-only venv (pip install, no extras) ...", flush=True)
        venv = ensure_runtime_venv(work)
        site, full_site = site_packages(Path(venv["venv"])), site_packages(full_venv)
        runtime_mb, full_mb = disk_mb(site), disk_mb(full_site)
        result["install"] = {
            **venv,
            "runtime_site_packages_mb": runtime_mb,
            "full_site_packages_mb": full_mb,
            "ratio_runtime_over_full": runtime_mb / full_mb,
            "runtime_largest": _largest(site),
        }
        error = runtime_import_error(Path(venv["venv"]) / "bin" / "python", work / "runtime")
        result["runtime_venv_error"] = error
        if error is None:
            runtime_python, pythonpath = Path(venv["venv"]) / "bin" / "python", None
    else:
        result["runtime_venv_error"] = "not built (venv=False)"
    result["runtime_code"] = (
        "runtime venv (installed copy of this checkout)"
        if pythonpath is None
        else f"full venv {full_venv}, this checkout on PYTHONPATH"
    )
    runtime_tag = [str(runtime_python), "-m", "lightning_module.commands.main", "tag"]
    if pythonpath is None and (runtime_python.parent / "audiotagger").exists():
        runtime_tag = [str(runtime_python.parent / "audiotagger"), "tag"]

    # 2. cold start, interleaved
    say("runtime: cold start, interleaved ...", flush=True)
    songs = write_mp3s(work / "runtime" / f"mp3_{cfg.seconds:g}s", max(cfg.files, 1), cfg.seconds)
    song = str(songs[0])
    commands = {
        "runtime": ([*runtime_tag, song, "--onnx", str(onnx)], _env(pythonpath)),
        "torch": (
            [str(full_python), str(PREDICT_SCRIPT), song, "--checkpoint", str(checkpoint)],
            _env(REPO_ROOT),
        ),
    }
    cwd = work / "runtime"
    for command, env in commands.values():  # untimed: page cache, .pyc files
        _run(command, env, cwd)
    cold: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(cfg.cold_runs):
        for name, (command, env) in commands.items():
            cold[name].append(_run(command, env, cwd)["wall_seconds"])
    medians = {k: statistics.median(v) for k, v in cold.items()}
    result["cold"] = {
        "commands": {k: " ".join(c) for k, (c, _) in commands.items()},
        "runs": cold,
        "runtime_seconds": medians["runtime"],
        "torch_seconds": medians["torch"],
        "ratio_runtime_over_torch": medians["runtime"] / medians["torch"],
    }

    # 3. peak RSS of a long file
    if cfg.long_seconds:
        say(f"runtime: peak RSS of a {cfg.long_seconds / 3600:g} h file ...", flush=True)
        long = write_long_file(work / f"long{cfg.long_seconds:g}s.flac", cfg.long_seconds)
        short = _run([*commands["runtime"][0]], commands["runtime"][1], cwd, rss=True)
        command = [*runtime_tag, str(long), "--onnx", str(onnx)]
        big = _run(command, commands["runtime"][1], cwd, rss=True)
        result["long_file"] = {
            "seconds": cfg.long_seconds,
            "format": "flac 44.1 kHz stereo",
            "command": " ".join(command),
            "peak_rss_mb": big["peak_rss_mb"],
            "wall_seconds": big["wall_seconds"],
            "peak_rss_mb_short_file": short["peak_rss_mb"],
            "measured_with": big["measured_with"],
        }

    # 4. warm folder throughput, in this process
    if cfg.files:
        say(f"runtime: {cfg.files} files, ONNX vs torch vs decode floors ...", flush=True)
        result["folder"] = measure_folder(
            onnx, checkpoint, songs[: cfg.files], cfg.repeats, cfg.decode_workers
        )
        result["folder"]["seconds"] = cfg.seconds
    return result


def runtime_rows(rt: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows of :func:`measure_runtime` (empty when it did not run)."""
    if not rt:
        return []
    rows = []
    install = rt.get("install")
    if install:
        rows.append(
            (
                "runtime",
                "install: site-packages, runtime venv (no extras) / full venv",
                f"{install['runtime_site_packages_mb']:,.0f} MB / "
                f"{install['full_site_packages_mb']:,.0f} MB "
                f"({install['ratio_runtime_over_full']:.3f}x)",
            )
        )
    where = "runtime venv" if rt["runtime_code"].startswith("runtime") else "full venv"
    cold = rt["cold"]
    rows.append(
        (
            "runtime",
            f"cold tag 30 s mp3: ONNX ({where}) / predict_clip.py --checkpoint",
            f"{cold['runtime_seconds']:.2f} s / {cold['torch_seconds']:.2f} s "
            f"({cold['ratio_runtime_over_torch']:.2f}x, medians of {len(cold['runs']['torch'])})",
        )
    )
    long = rt.get("long_file")
    if long:
        rows.append(
            (
                "runtime",
                f"peak RSS, ONNX ({where}), {long['seconds'] / 3600:g} h {long['format']}",
                f"{long['peak_rss_mb']:,.0f} MiB ({long['wall_seconds']:.0f} s; 30 s file "
                f"{long['peak_rss_mb_short_file']:,.0f} MiB)",
            )
        )
    folder = rt.get("folder")
    if folder:
        what = (
            f"{folder['files']} x {folder['seconds']:g} s mp3, {folder['decode_workers']} threads"
        )
        for key, label in (
            ("onnx", "predict_files ONNX"),
            ("torch", "predict_files PyTorch"),
            ("floor_decode", "floor: stream_audio (decode+resample)"),
            ("floor_windows", "floor: decode_windows (+header, windows)"),
        ):
            run = folder[key]
            extra = ""
            if key == "onnx":
                extra = (
                    f"; forward {run['forward_seconds']:.2f} s of {run['wall_seconds']:.2f} s;"
                    f" {folder['ratio_onnx_over_torch']:.2f}x torch,"
                    f" {folder['ratio_onnx_over_floor']:.2f}x floor"
                )
            elif key == "torch":
                extra = f"; {folder['ratio_torch_over_floor']:.2f}x floor"
            rows.append(
                (
                    "runtime",
                    f"{label} ({what}, warm)",
                    f"{run['files_per_second']:.2f} files/s, CPU "
                    f"{run['cpu_seconds_per_file']:.3f} s/file{extra}",
                )
            )
    if rt.get("runtime_venv_error") and where == "full venv":
        rows.append(("runtime", "runtime venv not used", rt["runtime_venv_error"][:90]))
    return rows
