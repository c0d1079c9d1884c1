"""What writing tags costs per file, beyond prediction (``scripts/benchmark.py --tags``).

Generates ``files`` short songs (mp3, flac, ogg vorbis, opus, m4a, wav in turn; ``seconds``
long), a results file of fixed predictions (the ``predict_clip --out`` JSON lines form, so no
model runs), then times, through the same code as ``scripts/write_tags.py --from-results``:

* the dry run (read tags, plan), ms per file;
* ``--apply`` (copy, write, re-read, check the audio of both files, fsync the journal, rename),
  ms per file, overall and per format, with the audio checked by decoding (the default) and by
  comparing the undecoded packets (``--verify packets``);
* a second ``--apply`` (nothing to change: what a resumed or repeated run costs), and undo;
* the audio check of one file alone, the part that grows with the song's length.

The target is < 20 ms per file beyond prediction.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from datamodules.io import write_json_atomic
from lightning_module.benchmark.fixtures import write_m4a
from lightning_module.library.write_tags import (
    Journal,
    WriteOptions,
    audio_digest,
    predictions_from_results,
    run_library,
    run_undo,
)

TARGET_MS = 20.0
KINDS = ("mp3", "flac", "ogg", "opus", "m4a", "wav")
PREDICTION = {
    "genre": [{"label": "rock", "probability": 0.91}],
    "mood": [{"label": "energetic", "probability": 0.66}],
    "features": {"danceability": 0.61, "energy": 0.74, "valence": 0.5, "tempo": 128.2},
}


def make_library(folder: Path, files: int, seconds: float, seed: int = 0) -> list[Path]:
    """``files`` tone-and-noise songs of ``seconds`` each, cycling through :data:`KINDS`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(files):
        kind = KINDS[i % len(KINDS)]
        x = 0.3 * np.sin(2 * np.pi * (220 + i) * t) + 0.05 * rng.standard_normal(t.size)
        x = x.astype(np.float32)
        path = folder / f"song{i:05d}.{kind}"
        if kind == "m4a":
            write_m4a(path, x, sr)
        elif kind == "opus":
            sf.write(path, x, 48000, format="OGG", subtype="OPUS")
        elif kind == "ogg":
            sf.write(path, x, sr, format="OGG", subtype="VORBIS")
        elif kind == "mp3":
            sf.write(path, x, sr, format="MP3")
        else:
            sf.write(path, x, sr)
        paths.append(path)
    return paths


def run_tags_benchmark(work_dir: Path, files: int = 200, seconds: float = 30.0) -> dict[str, Any]:
    """Measure (see the module docstring); returns the numbers (ms) and writes them as JSON."""
    import shutil

    work_dir = Path(work_dir)
    folder = work_dir / "tag_library"
    if folder.exists():
        shutil.rmtree(folder)
    paths = make_library(folder, files, seconds)
    results = work_dir / "tag_results.jsonl"
    results.write_text(
        "".join(json.dumps({"path": str(p), **PREDICTION}) + "\n" for p in paths),
        encoding="utf-8",
    )
    journal_path = work_dir / "tag_journal.jsonl"

    def timed_run(apply: bool, verify: str, kind: str | None = None) -> float:
        options = WriteOptions(model="benchmark", version="benchmark", verify=verify)
        items, _ = predictions_from_results(results, folder)
        if kind is not None:
            items = [(p, pred) for p, pred in items if p.endswith(f".{kind}")]
        start = time.perf_counter()
        with Journal(journal_path) as journal:
            summary = run_library(items, options, apply, journal, io.StringIO(), None, False)
        elapsed = time.perf_counter() - start
        if summary.failed:
            raise RuntimeError(f"tag benchmark: {summary.failed[0]}")
        return elapsed

    def undo() -> float:
        start = time.perf_counter()
        run_undo(journal_path, True, io.StringIO(), progress=False, verify="packets")
        elapsed = time.perf_counter() - start
        journal_path.unlink()
        return elapsed

    journal_path.unlink(missing_ok=True)
    result: dict[str, Any] = {"files": files, "seconds_per_file": seconds, "target_ms": TARGET_MS}
    result["dry_run_ms_per_file"] = timed_run(False, "decode") / files * 1e3
    for verify in ("decode", "packets"):
        per_kind = {}
        for kind in KINDS:  # one run per format, over that format's files
            count = sum(p.suffix == f".{kind}" for p in paths)
            if count:
                per_kind[kind] = timed_run(True, verify, kind) / count * 1e3
        undo_s = undo()
        total = timed_run(True, verify)
        result[verify] = {
            "apply_ms_per_file": total / files * 1e3,
            "apply_ms_per_file_by_format": per_kind,
            "second_apply_ms_per_file": timed_run(True, verify) / files * 1e3,
        }
        result.setdefault("undo_ms_per_file", undo_s / files * 1e3)
        undo()
    timings: dict[str, list[float]] = {"decode": [], "packets": []}
    for p in paths[: min(len(paths), 60)]:
        for verify in timings:
            start = time.perf_counter()
            audio_digest(p, verify)
            timings[verify].append((time.perf_counter() - start) * 1e3)
    for verify, values in timings.items():
        result[verify]["one_check_ms_per_file"] = statistics.median(values)
    write_json_atomic(work_dir / "tags_benchmark.json", result)
    return result


def format_tags_table(result: dict[str, Any]) -> str:
    """The numbers as a small table (ms per file)."""
    n, s = result["files"], result["seconds_per_file"]
    lines = [
        f"tag writing, {n} files of {s:g} s (mp3/flac/ogg/opus/m4a/wav), from a results file; "
        f"ms per file (target < {result['target_ms']:g})",
        f"  dry run (read tags, plan)                 {result['dry_run_ms_per_file']:7.1f}",
        f"  undo (restore, packet check)              {result['undo_ms_per_file']:7.1f}",
        f"  {'--apply, audio check by':<40}  {'decode':>7}  {'packets':>7}",
    ]
    dec, pkt = result["decode"], result["packets"]
    lines.append(
        f"  {'all formats':<40}  {dec['apply_ms_per_file']:7.1f}  {pkt['apply_ms_per_file']:7.1f}"
    )
    for kind in dec["apply_ms_per_file_by_format"]:
        a = dec["apply_ms_per_file_by_format"][kind]
        b = pkt["apply_ms_per_file_by_format"][kind]
        lines.append(f"    {kind:<38}  {a:7.1f}  {b:7.1f}")
    lines += [
        f"  {'second --apply (nothing to change)':<40}  "
        f"{dec['second_apply_ms_per_file']:7.1f}  {pkt['second_apply_ms_per_file']:7.1f}",
        f"  {'one audio check of one file':<40}  "
        f"{dec['one_check_ms_per_file']:7.1f}  {pkt['one_check_ms_per_file']:7.1f}",
    ]
    return "\n".join(lines)
