"""What the feature teachers cost per clip: decode + tempo + loudness (in this process), and
vibenet (its command line, a separate process; start-up measured apart)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from datamodules.audio import load_audio
from datamodules.synthetic import render_clip


def write_clips(
    folder: Path, n: int, seconds: float = 30.0, sample_rate: int = 22050
) -> list[Path]:
    """``n`` synthetic 30 s clips as wav (reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"teacher_clip{i}.wav"
        if not path.exists():
            samples, _ = render_clip("rock", "energetic", seconds, sample_rate, rng)
            sf.write(path, samples, sample_rate)
        paths.append(path)
    return paths


def measure_teachers(work_dir: Path, n: int = 8) -> dict[str, Any]:
    """Seconds per 30 s clip of each teacher; teachers that are not installed are left out."""
    from datamodules.analysis import loudness, tempo
    from datamodules.analysis.vibenet import run_vibenet, vibenet_executable

    paths = write_clips(work_dir / "teacher_clips", n)
    result: dict[str, Any] = {"clips": n, "clip_seconds": 30.0}
    try:
        tempo.estimate_tempo(np.zeros(1), 16000)  # imports librosa (and warms numba) once
    except ValueError:
        pass
    except ImportError:
        return result
    decode = tempo_s = loud_s = 0.0
    for path in paths:
        start = time.perf_counter()
        wave = load_audio(path, tempo.SAMPLE_RATE)
        decode += time.perf_counter() - start
        start = time.perf_counter()
        tempo.estimate_tempo(wave, tempo.SAMPLE_RATE)
        tempo_s += time.perf_counter() - start
        start = time.perf_counter()
        loudness.integrated_loudness(wave, tempo.SAMPLE_RATE)
        loud_s += time.perf_counter() - start
    result.update(decode_s=decode / n, tempo_s=tempo_s / n, loudness_s=loud_s / n)
    executable = vibenet_executable()
    if executable:
        start = time.perf_counter()
        run_vibenet(executable, paths[:1])
        one = time.perf_counter() - start
        start = time.perf_counter()
        run_vibenet(executable, paths)
        batch = time.perf_counter() - start
        # The batch pays the process start once; the per-clip cost is what more clips add.
        result.update(
            vibenet_startup_s=max(0.0, one - (batch - one) / max(1, n - 1)),
            vibenet_s=(batch - one) / max(1, n - 1),
        )
    return result


def teacher_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows of :func:`measure_teachers`."""
    if "tempo_s" not in result:
        return [("teacher", "feature teachers", "not installed (make test / .[features])")]
    rows = [
        ("teacher", "decode 30 s clip to 16 kHz mono", f"{result['decode_s'] * 1000:.0f} ms/clip"),
        ("teacher", "tempo (librosa, chosen on GTZAN)", f"{result['tempo_s'] * 1000:.0f} ms/clip"),
        ("teacher", "loudness (BS.1770, pyloudnorm)", f"{result['loudness_s'] * 1000:.0f} ms/clip"),
    ]
    if "vibenet_s" in result:
        rows.append(
            (
                "teacher",
                "vibenet, 7 features (separate process)",
                f"{result['vibenet_s'] * 1000:.0f} ms/clip + {result['vibenet_startup_s']:.1f} s "
                "start-up per batch",
            )
        )
    return rows
