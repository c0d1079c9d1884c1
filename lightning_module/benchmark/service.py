"""Throughput of the tagging service against one process per file (``scripts/benchmark.py
--service``).

A real ``scripts/serve.py`` runs in a subprocess on 127.0.0.1; ``clients`` concurrent httpx
clients upload ``requests`` 30 s mp3s (a few distinct files, in turn) as fast as it answers.
Reported: requests/s, p50/p90/p99 latency, forward passes and windows per pass (dynamic
batching), the server's CPU seconds per request. The baseline is what a media server without the
service would do, ``scripts/predict_clip.py FILE --json`` in a fresh process per file: timed on
``cold_runs`` of the same files, one after another, and extrapolated to files/s (1 / mean
seconds per file); the ratio is requests/s over that. Not a test: a bounded run (~1-2 minutes on
2 cores), nothing asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from datamodules.io import write_json_atomic
from datamodules.synthetic import ensure_synthetic
from lightning_module.benchmark.core import BenchmarkConfig
from lightning_module.benchmark.fixtures import write_long_clip
from lightning_module.benchmark.measure import (
    PREDICT_SCRIPT,
    REPO_ROOT,
    load_average,
    machine_info,
    run_child,
)
from lightning_module.benchmark.train_speed import measure_training

SERVE_SCRIPT = REPO_ROOT / "scripts" / "serve.py"


@dataclass
class ServiceBenchmarkConfig:
    """What to run.

    Args:
        work_dir: clips, the default model's checkpoint (as ``make bench`` makes it) and the JSON.
        checkpoint: the model to serve (default: ``work_dir/bench.ckpt``, made if missing).
        clip_seconds: length of each mp3 (44.1 kHz stereo, as users' files are).
        files: distinct clips, uploaded in turn.
        requests: uploads in the timed run (after ``warmup`` untimed ones).
        clients: concurrent clients.
        cold_runs: fresh ``predict_clip.py`` processes timed for the baseline (files in turn).
        batch_size: windows per model call of one request (``serve.py --batch-size``; 16, as
            ``predict_clip``, keeps a lone request's answer bit-identical to it).
        max_batch, max_wait_ms: the server's dynamic batching.
        device: where the server runs the model.
    """

    work_dir: Path = Path("data/bench")
    checkpoint: Path | None = None
    clip_seconds: float = 30.0
    files: int = 5
    requests: int = 200
    clients: int = 16
    warmup: int = 8
    cold_runs: int = 5
    batch_size: int = 16
    max_batch: int = 64
    max_wait_ms: float = 10.0
    device: str = "cpu"


def default_checkpoint(work_dir: Path) -> Path:
    """``work_dir/bench.ckpt``: the default model after 2 training steps, as ``make bench``
    makes it for its inference rows (made here when missing; speed does not need training)."""
    checkpoint = Path(work_dir) / "bench.ckpt"
    if checkpoint.is_file():
        return checkpoint
    cfg = BenchmarkConfig(work_dir=Path(work_dir), warmup_steps=1, train_steps=1).resolved()
    manifest = ensure_synthetic(
        cfg.work_dir / "synthetic",
        clips_per_class=cfg.clips_per_class,
        duration=cfg.clip_seconds,
        seed=cfg.seed,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    cfg = BenchmarkConfig(**{**asdict(cfg), "crop_seconds": 3.0})
    measure_training(manifest, cfg, cfg.batch_sizes[0], save_to=checkpoint)
    return checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _load(url: str, clips: list[Path], total: int, clients: int) -> tuple[float, list]:
    """``total`` uploads from ``clients`` concurrent clients; wall seconds and per-request
    (latency seconds, status)."""
    payloads = [(clip.name, clip.read_bytes()) for clip in clips]
    results: list[tuple[float, int]] = []
    next_index = 0

    async def client() -> None:
        nonlocal next_index
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while next_index < total:
                i = next_index
                next_index += 1
                name, data = payloads[i % len(payloads)]
                start = time.perf_counter()
                response = await http.post("/v1/tag", files={"file": (name, data)})
                results.append((time.perf_counter() - start, response.status_code))

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, results


def run_service_benchmark(cfg: ServiceBenchmarkConfig, progress: bool = True) -> dict[str, Any]:
    """Serve, load, measure the per-process baseline; a JSON-ready dict."""
    say = print if progress else (lambda *a, **k: None)
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info(cfg.device)
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else default_checkpoint(work)
    clips = [
        write_long_clip(work / f"service_clip{i}_{cfg.clip_seconds:g}s.mp3", cfg.clip_seconds, i)
        for i in range(cfg.files)
    ]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    uploads = work / "service_uploads"
    uploads.mkdir(exist_ok=True)
    command = [
        sys.executable,
        str(SERVE_SCRIPT),
        "--checkpoint",
        str(checkpoint),
        "--port",
        str(port),
        "--device",
        cfg.device,
        "--batch-size",
        str(cfg.batch_size),
        "--max-batch",
        str(cfg.max_batch),
        "--max-wait-ms",
        str(cfg.max_wait_ms),
        "--max-concurrent",
        str(max(cfg.clients * 2, 32)),
        "--temp-dir",
        str(uploads),
        "--log-level",
        "warning",
    ]
    say(f"service: starting {SERVE_SCRIPT.name} on {url} ...", flush=True)
    started = time.perf_counter()
    server = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"serve.py exited with {server.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        startup = time.perf_counter() - started
        asyncio.run(_load(url, clips, cfg.warmup, min(cfg.clients, cfg.warmup)))
        before = httpx.get(url + "/healthz").json()
        cpu_before = _process_cpu(server.pid)
        say(f"service: {cfg.requests} uploads from {cfg.clients} clients ...", flush=True)
        wall, results = asyncio.run(_load(url, clips, cfg.requests, cfg.clients))
        cpu = _process_cpu(server.pid) - cpu_before
        after = httpx.get(url + "/healthz").json()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    latencies = [seconds for seconds, _ in results]
    statuses = sorted({status for _, status in results})
    passes = after["forward_passes"] - before["forward_passes"]
    windows = after["windows_run"] - before["windows_run"]
    say(f"baseline: {cfg.cold_runs} x predict_clip.py in a fresh process ...", flush=True)
    cold = []
    for i in range(cfg.cold_runs):
        clip = clips[i % len(clips)]
        run = [sys.executable, str(PREDICT_SCRIPT), str(clip), "--checkpoint", str(checkpoint)]
        child = run_child([*run, "--json", "--device", cfg.device])
        if child.done.returncode != 0:
            raise RuntimeError(f"predict_clip.py failed: {child.done.stderr.strip()[-300:]}")
        cold.append(child.wall_seconds)
    per_file = statistics.mean(cold)
    rps = len(results) / wall
    machine["load_average_end"] = load_average()
    return {
        "machine": machine,
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "checkpoint": str(checkpoint),
        "server_startup_seconds": startup,
        "requests": len(results),
        "statuses": statuses,
        "wall_seconds": wall,
        "requests_per_second": rps,
        "latency_p50_seconds": _percentile(latencies, 50),
        "latency_p90_seconds": _percentile(latencies, 90),
        "latency_p99_seconds": _percentile(latencies, 99),
        "latency_max_seconds": max(latencies),
        "forward_passes": passes,
        "windows": windows,
        "windows_per_pass": windows / passes if passes else 0.0,
        "server_cpu_seconds_per_request": cpu / len(results) if cpu else None,
        "predict_clip_process_seconds": cold,
        "predict_clip_files_per_second": 1.0 / per_file,
        "speedup_vs_process_per_file": rps * per_file,
    }


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def format_service_table(result: dict[str, Any]) -> str:
    """The numbers as a small table."""
    cfg = result["config"]
    cpu = result["server_cpu_seconds_per_request"]
    cold = result["predict_clip_process_seconds"]
    rows = [
        (
            f"service: {result['requests']} x {cfg['clip_seconds']:g} s mp3, "
            f"{cfg['clients']} clients",
            f"{result['requests_per_second']:.2f} requests/s (HTTP {result['statuses']})",
        ),
        (
            "service latency p50 / p90 / p99",
            f"{result['latency_p50_seconds']:.2f} / {result['latency_p90_seconds']:.2f} / "
            f"{result['latency_p99_seconds']:.2f} s",
        ),
        (
            "service forward passes (dynamic batching)",
            f"{result['forward_passes']} for {result['windows']} windows "
            f"({result['windows_per_pass']:.1f} per pass)",
        ),
        ("service CPU per request", f"{cpu:.3f} s" if cpu else "n/a"),
        (
            f"predict_clip.py, fresh process per file ({len(cold)} runs)",
            f"{statistics.mean(cold):.2f} s per file = "
            f"{result['predict_clip_files_per_second']:.2f} files/s",
        ),
        ("service / process per file", f"{result['speedup_vs_process_per_file']:.1f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def write_service_json(result: dict[str, Any], path: Path) -> Path:
    return write_json_atomic(path, result)
