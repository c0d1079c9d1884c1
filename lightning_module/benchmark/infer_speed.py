"""The inference rows: warm real-time factors of a clip (the model's forward over its windows
only, and the full ``Tagger.predict_file`` including mp3 decoding) and the cold-start wall time
of ``scripts/predict_clip.py`` in a fresh process.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_module.benchmark.measure import (
    PREDICT_SCRIPT,
    median_seconds,
    run_child,
    sync_device,
)
from lightning_module.inference.tagger import Tagger

if TYPE_CHECKING:
    from lightning_module.benchmark.core import BenchmarkConfig


def measure_inference(checkpoint: Path, clip: Path, cfg: BenchmarkConfig) -> dict[str, Any]:
    """Warm real-time factors of forward-only and full ``predict_file``, and the cold start."""
    tagger = Tagger.from_checkpoint(checkpoint, device=cfg.device)
    wave = tagger.load(clip)
    seconds = wave.shape[-1] / tagger.sample_rate

    def forward() -> None:
        tagger.window_outputs(wave)
        sync_device(cfg.device)

    forward_s, forward_cpu = median_seconds(forward, cfg.repeats)
    decode_s, _ = median_seconds(lambda: tagger.load(clip), cfg.repeats)
    predict_s, predict_cpu = median_seconds(lambda: tagger.predict_file(clip), cfg.repeats)
    command = [
        sys.executable,
        str(PREDICT_SCRIPT),
        str(clip),
        "--checkpoint",
        str(checkpoint),
        "--device",
        cfg.device,
    ]
    cold, cold_cpu, import_s = [], [], []
    for _ in range(cfg.cold_runs):
        run = run_child(command)
        if run.done.returncode != 0:
            last = (run.done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{PREDICT_SCRIPT.name} failed ({run.done.returncode}): {last}")
        cold.append(run.wall_seconds)
        cold_cpu.append(run.cpu_seconds)
        imported = run_child([sys.executable, "-c", "import lightning_module.inference.tagger"])
        import_s.append(imported.wall_seconds)
    return {
        "backbone": tagger.spec.backbone,
        "parameters": sum(p.numel() for p in tagger.net.parameters()),
        "window_seconds": tagger.window / tagger.sample_rate,
        "clip_seconds": seconds,
        "windows": len(tagger.window_outputs(wave)[0]),
        "forward_seconds": forward_s,
        "forward_cpu_seconds": forward_cpu,
        "rtf_forward": forward_s / seconds,
        "decode_seconds": decode_s,
        "predict_clip_seconds": predict_s,
        "predict_clip_cpu_seconds": predict_cpu,
        "rtf_predict_clip": predict_s / seconds,
        "cold_start_seconds": statistics.median(cold),
        "cold_start_runs": cold,
        "cold_start_cpu_seconds": statistics.median(cold_cpu),
        "import_seconds": statistics.median(import_s),
        "device": cfg.device,
    }


def inference_rows(inf: dict[str, Any], name: str = "") -> list[tuple[str, str, str]]:
    """Table rows of one :func:`measure_inference` result; ``name`` labels a user's checkpoint."""
    model = (
        f"{name}: {inf['backbone']}, {inf['parameters'] / 1e6:.2f} M, "
        f"{inf['window_seconds']:g} s windows; "
        if name
        else ""
    )
    return [
        (
            "infer",
            f"{model}RTF forward only ({inf['clip_seconds']:.0f} s clip, {inf['windows']} windows)",
            f"{inf['rtf_forward']:.4f} ({inf['forward_seconds']:.3f} s,"
            f" CPU {inf['forward_cpu_seconds']:.3f} s)",
        ),
        (
            "infer",
            f"{model}RTF predict_clip warm (mp3 decode + forward)",
            f"{inf['rtf_predict_clip']:.4f} ({inf['predict_clip_seconds']:.3f} s,"
            f" CPU {inf['predict_clip_cpu_seconds']:.3f} s)",
        ),
        (
            "infer",
            f"{model}predict_clip.py cold start (fresh process)",
            f"{inf['cold_start_seconds']:.2f} s (CPU {inf['cold_start_cpu_seconds']:.2f} s;"
            f" import alone {inf['import_seconds']:.2f} s)",
        ),
    ]
