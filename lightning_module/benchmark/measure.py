"""How the benchmark measures: wall and CPU time, peak memory, fresh processes, the machine.

Every benchmark module (``core``, ``service``, ``library_speed``, ``runtime`` ...) times things
with these helpers, so a number means the same in every row. torch is imported inside the two
functions that need it, so the torch-free runtime rows can use the rest.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PREDICT_SCRIPT = REPO_ROOT / "scripts" / "predict_clip.py"
#: GNU time: ``-v`` prints a child's peak RSS ("Maximum resident set size").
TIME_BINARY = Path("/usr/bin/time")


def machine_info(device: str) -> dict[str, Any]:
    """Where the numbers come from: CPU count, GPU name, library versions, load at the start."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "device": device,
        "load_average_start": load_average(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def sync_device(device: str) -> None:
    """Wait for queued CUDA work, so a timer read afterwards includes it (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


# -- this process ---------------------------------------------------------------------------------
def reset_own_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs``); ``False``
    when it cannot, and :func:`own_peak_rss_mb` then covers the process' lifetime."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def own_peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``; else ``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads) of ``fn()`` after one warm-up call.

    CPU time is the robust number on a shared machine: other work lengthens the wall time, not
    the CPU time, which bounds the wall time on an idle machine of the same cores.
    """
    fn()  # warm-up: first-call allocations, lazy imports, page cache
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


# -- fresh processes ------------------------------------------------------------------------------
def children_cpu() -> float:
    """User + system CPU seconds of every child this process has waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ChildRun:
    """One fresh process: its wall and CPU seconds, its output, and (when asked) its peak RSS."""

    wall_seconds: float
    cpu_seconds: float
    done: subprocess.CompletedProcess
    peak_rss_mb: float | None = None
    #: How ``peak_rss_mb`` was measured (``None`` when it was not asked for).
    rss_measured_with: str | None = None


def run_child(
    command: list[str],
    *,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    rss: bool = False,
) -> ChildRun:
    """Run ``command`` in a fresh process (output captured) and time it; never raises on a
    non-zero exit (read ``done.returncode``).

    With ``rss``, the peak RSS comes from ``/usr/bin/time -v`` when present; else from
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the peak of the largest child this process has
    waited for (an upper bound if an earlier child was bigger).
    """
    timed = rss and TIME_BINARY.exists()
    prefix = [str(TIME_BINARY), "-v"] if timed else []
    start, start_cpu = time.perf_counter(), children_cpu()
    done = subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=cwd, env=env)
    run = ChildRun(time.perf_counter() - start, children_cpu() - start_cpu, done)
    if rss:
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        if timed and match:
            run.peak_rss_mb, run.rss_measured_with = int(match.group(1)) / 1024, "/usr/bin/time -v"
        else:
            run.peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            run.rss_measured_with = "getrusage(RUSAGE_CHILDREN).ru_maxrss"
    return run


def last_line(text: str) -> str:
    """The last non-blank line of a process' output (its error, usually)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
