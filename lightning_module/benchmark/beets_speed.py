"""``beet audiotag`` against beets' own ``autobpm`` on the same files (``scripts/benchmark.py
--beets``; issue 28's target: at least 10x the files per second).

Both run as a user runs them: the ``beet`` command of this venv, in a fresh process, on a beets
library of their own holding the same generated files (imported with ``beet import -A``, copied,
``import.write: yes``, so each writes its tags into its copies). What is timed is the whole
command, start-up and model load included, once each, on the same cores, one after the other:

* ``beet audiotag -q``: the shipped model (onnxruntime) on up to 64 windows of 6 s per file at
  16 kHz, files sharing batches while the next decode: genre (5), mood (4), nine audio features
  (tempo among them, written to ``bpm``), 50 tags, 21 AllMusic genre tags and an embedding; it
  stores 17 fields per item.
* ``beet autobpm -q``: ``librosa.load`` of the whole file (resampled to 22.05 kHz mono,
  ``kaiser_fast``), then ``librosa.beat.beat_track``: one number, the tempo, into ``bpm``.

Also reported: the CPU seconds of each command (all its threads) and the start-up of ``beet``
alone (``beet ls`` on the same library), so the per-file rates can be read without it. Files
are 44.1 kHz stereo, half mp3, half flac, tones, noise and clicks (analysis speed does not
depend on what the music is); they are kept in ``<work_dir>/beets/src`` for later runs.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from datamodules.io import atomic_path, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
BEET = Path(sys.executable).parent / "beet"
SAMPLE_RATE = 44100
TARGET_RATIO = 10.0


@dataclass
class BeetsBenchConfig:
    """Files in the library, their length (s), and where they and the libraries live."""

    work_dir: Path = Path("data/bench")
    files: int = 24
    seconds: float = 180.0


def write_files(folder: Path, files: int, seconds: float) -> list[Path]:
    """``files`` songs of ``seconds`` (44.1 kHz stereo, mp3 and flac in turn), kept when there."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song_{i:03d}.{('mp3', 'flac')[i % 2]}" for i in range(files)]
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    for i, path in enumerate(paths):
        if path.is_file() and abs(sf.info(str(path)).duration - seconds) < 1.0:
            continue
        rng = np.random.default_rng(i)
        bpm = 80 + 5 * i
        clicks = (np.sin(2 * np.pi * bpm / 60 * t) > 0.95).astype(np.float32)
        tone = np.sin(2 * np.pi * (110 + 20 * i) * t) * (0.2 + 0.8 * clicks)
        mono = 0.3 * tone + 0.02 * rng.standard_normal(t.size)
        stereo = np.stack([mono, np.roll(mono, 11)], axis=1).astype(np.float32)
        with atomic_path(path) as tmp:
            sf.write(tmp, stereo, SAMPLE_RATE, format=path.suffix[1:].upper())
    return paths


def _library(home: Path, src: Path, plugin: str) -> Path:
    """A fresh beets home with ``plugin`` and ``src`` imported as-is (copied)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(
        f"directory: {home / 'music'}\nlibrary: {home / 'library.db'}\nplugins: {plugin}\n"
        "import:\n  copy: yes\n  write: yes\n"
        # autobpm tags on import by default: off, so that its command does the work timed
        f"{plugin}:\n  auto: no\n",
        encoding="utf-8",
    )
    _beet(home, "import", "-A", "-q", str(src))
    return home


def _beet(home: Path, *args: str) -> dict[str, Any]:
    """Run ``beet`` on ``home``: wall and CPU seconds (user + system, all its threads), output."""
    env = {
        **os.environ,
        "BEETSDIR": str(home),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(BEET), *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"beet {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "stdout": done.stdout, "stderr": done.stderr}


def _bpm_count(home: Path) -> int:
    """Items of the library with a BPM."""
    out = _beet(home, "ls", "-f", "$bpm")["stdout"].split()
    return sum(1 for v in out if v.isdigit() and int(v) > 0)


def run_beets_benchmark(config: BeetsBenchConfig) -> dict[str, Any]:
    """Measure both commands once (see the module docstring); returns the report."""
    import importlib.util

    if importlib.util.find_spec("beets") is None:
        raise RuntimeError("beets is not installed (pip install -e '.[beets]')")
    root = Path(config.work_dir) / "beets"
    src = root / "src"
    paths = write_files(src, config.files, config.seconds)
    for old in src.iterdir():  # files of an earlier run with other settings
        if old not in paths:
            old.unlink()
    report: dict[str, Any] = {
        "config": {**asdict(config), "work_dir": str(config.work_dir)},
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start": list(os.getloadavg()),
    }
    ours = _library(root / "audiotagger", src, "audiotagger")
    report["startup"] = _beet(ours, "ls")["wall_s"]
    run = _beet(ours, "audiotag", "-q")
    report["audiotag"] = {
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "summary": run["stdout"].strip().splitlines()[-1],
        "with_bpm": _bpm_count(ours),
    }
    if importlib.util.find_spec("librosa") is None:
        report["autobpm"] = {"error": "librosa is not installed (beets' autobpm needs it)"}
    else:
        theirs = _library(root / "autobpm", src, "autobpm")
        run = _beet(theirs, "autobpm", "-q")
        report["autobpm"] = {
            "wall_s": run["wall_s"],
            "cpu_s": run["cpu_s"],
            "with_bpm": _bpm_count(theirs),
        }
        report["ratio_files_per_s"] = report["autobpm"]["wall_s"] / report["audiotag"]["wall_s"]
        report["ratio_cpu"] = report["autobpm"]["cpu_s"] / report["audiotag"]["cpu_s"]
    report["load_average_end"] = list(os.getloadavg())
    write_json_atomic(Path(config.work_dir) / "beets_benchmark.json", report)
    return report


def format_beets_table(report: dict[str, Any]) -> str:
    """The table ``scripts/benchmark.py --beets`` prints."""
    c = report["config"]
    n = c["files"]
    lines = [
        f"beets: {n} files of {c['seconds']:.0f} s (44.1 kHz stereo mp3/flac), one run each, "
        f"{report['cores']} cores, load average {report['load_average_start'][0]:.1f} at start",
        f"{'command':<34}{'wall s':>8}{'files/s':>9}{'CPU s':>8}{'CPU s/file':>11}  bpm set",
    ]
    for name, label in (("audiotag", "beet audiotag (shipped model)"), ("autobpm", "beet autobpm")):
        row = report.get(name) or {}
        if "error" in row:
            lines.append(f"{label:<34}{row['error']}")
            continue
        lines.append(
            f"{label:<34}{row['wall_s']:>8.1f}{n / row['wall_s']:>9.2f}{row['cpu_s']:>8.1f}"
            f"{row['cpu_s'] / n:>11.3f}  {row['with_bpm']}/{n}"
        )
    lines.append(f"{'beet start-up alone (beet ls)':<34}{report['startup']:>8.1f}")
    if "ratio_files_per_s" in report:
        ratio = report["ratio_files_per_s"]
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        lines.append(
            f"audiotag / autobpm: {ratio:.1f}x the files/s ({verdict} the {TARGET_RATIO:.0f}x "
            f"target), {report['ratio_cpu']:.1f}x less CPU; autobpm computes the tempo only"
        )
    return "\n".join(lines)
