"""The whole benchmark run: what to measure, the run, one table of the results, the JSON.

Everything runs in one process on one synthetic dataset, so ratios are meaningful even on a
machine shared with other work. Each part is measured by its own module, and adds its rows to
:func:`format_table`:

* **loader** (``loader_speed``): naive per-item decoding + CPU log-mel against the int16 cache;
* **train** (``train_speed``): clips/s of real ``Trainer.fit`` steps at two batch sizes, the
  compute share and peak memory;
* **infer** (``infer_speed``): real-time factors of a 30 s clip and the cold start of
  ``scripts/predict_clip.py`` in a fresh process;
* **teacher**, **folder**, **runtime** (``teachers``, ``library_speed``, ``runtime``).

How things are timed is in ``measure``; the generated audio in ``fixtures``. On CUDA it trains
in bf16 with ``channels_last``; on CPU in float32. ``scripts/benchmark.py`` is the command line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml

from datamodules.io import write_json_atomic
from datamodules.loading.datamodule import MusicDataModule
from datamodules.schema import DEFAULT_CROP_SECONDS
from datamodules.synthetic import ensure_synthetic
from lightning_module.benchmark.fixtures import write_long_clip
from lightning_module.benchmark.infer_speed import inference_rows, measure_inference
from lightning_module.benchmark.library_speed import (
    LibraryBenchConfig,
    library_rows,
    measure_library,
)
from lightning_module.benchmark.loader_speed import loader_rows, measure_loader
from lightning_module.benchmark.measure import load_average, machine_info
from lightning_module.benchmark.runtime import runtime_rows
from lightning_module.benchmark.teachers import measure_teachers, teacher_rows
from lightning_module.benchmark.train_speed import DEFAULT_CONFIG, measure_training, model_defaults
from lightning_module.inference.device import resolve_device
from lightning_module.model.frontend import LogMel
from lightning_module.model.settings import LogMelSettings

__all__ = [  # machine_info: the runtime and service rows describe the machine the same way
    "BenchmarkConfig",
    "BenchmarkResult",
    "format_table",
    "machine_info",
    "quiet_lightning",
    "run_benchmark",
    "write_json",
]


@dataclass
class BenchmarkConfig:
    """What to measure. ``None`` means: chosen for the device (see :meth:`resolved`).

    Args:
        work_dir: synthetic dataset, audio cache, checkpoint, 30 s clip and JSON land here.
        clips_per_class: synthetic clips per (genre, mood) pair (24 pairs).
        clip_seconds: length of each synthetic clip.
        crop_seconds: length of a training clip.
        loader_batch: batch size of the loader measurements.
        cached_repeats: passes over the clips for the (much faster) cached loader.
        batch_sizes: the two training batch sizes (CPU 8 and 32; CUDA 256 and 1024).
        warmup_steps, train_steps: training steps left out of, then included in, the timing.
        num_workers: DataLoader workers of the training runs (``None``: the data module's
            default on CPU, ``min(8, cores)`` on CUDA).
        augment: waveform augmentation during the training runs (its CPU cost is measured in the
            loader section either way).
        precision: Lightning precision (CPU ``32-true``, CUDA ``bf16-mixed``).
        channels_last: NHWC convolutions (CPU no, CUDA yes).
        compile: ``torch.compile`` the network for the training runs.
        infer_seconds: length of the clip whose real-time factor is measured.
        repeats: timed repetitions of each inference measurement (the median is reported).
        cold_runs: fresh ``predict_clip.py`` processes timed for the cold start.
        device: ``cpu`` or ``cuda`` (``None``: CUDA when available).
        seed: seed of the synthetic data, crops and model.
        checkpoints: trained checkpoints (e.g. the real-music students) whose inference is measured
            too, on the same clip and the same way as the default model's.
        teacher_clips: 30 s clips the feature teachers' labelling cost is measured on (0: skip).
        library_files: generated 30 s files of the folder-tagging rows (``benchmark.library_speed``;
            0: skip).
        library_musicnn_files: how many of them musicnn's extractor tags (``None``: all).
        library_long_seconds: length of the file whose peak RSS is measured (0: skip).
    """

    work_dir: Path = Path("data/bench")
    clips_per_class: int = 2
    clip_seconds: float = 12.0
    crop_seconds: float = 10.0
    loader_batch: int = 16
    cached_repeats: int = 20
    batch_sizes: tuple[int, int] | None = None
    warmup_steps: int = 2
    train_steps: int = 5
    num_workers: int | None = None
    augment: bool = False
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool = False
    infer_seconds: float = 30.0
    repeats: int = 5
    cold_runs: int = 3
    device: str | None = None
    seed: int = 0
    checkpoints: tuple[Path, ...] = ()
    teacher_clips: int = 8
    library_files: int = 200
    library_musicnn_files: int | None = None
    library_long_seconds: float = 7200.0

    def resolved(self) -> BenchmarkConfig:
        """A copy with every ``None`` replaced by the choice for the device."""
        device = self.device or str(resolve_device("auto"))
        cuda = device.startswith("cuda")
        values = asdict(self)
        values.update(
            work_dir=Path(self.work_dir),
            checkpoints=tuple(Path(p) for p in self.checkpoints),
            device=device,
            batch_sizes=tuple(self.batch_sizes or ((256, 1024) if cuda else (8, 32))),
            precision=self.precision or ("bf16-mixed" if cuda else "32-true"),
            channels_last=cuda if self.channels_last is None else self.channels_last,
            num_workers=self.num_workers
            if self.num_workers is not None
            else (min(8, os.cpu_count() or 1) if cuda else None),
        )
        return BenchmarkConfig(**values)


@dataclass
class BenchmarkResult:
    """Everything measured, JSON-ready."""

    machine: dict[str, Any]
    config: dict[str, Any]
    loader: dict[str, Any] = field(default_factory=dict)
    train: list[dict[str, Any]] = field(default_factory=list)
    inference: dict[str, Any] = field(default_factory=dict)
    #: ``inference`` of each of ``BenchmarkConfig.checkpoints``, with its path.
    inference_checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: The feature teachers' labelling cost per clip (``benchmark.teachers``).
    teachers: dict[str, Any] = field(default_factory=dict)
    #: Folder throughput, musicnn's extractor, long-file memory (``benchmark.library_speed``).
    library_speed: dict[str, Any] = field(default_factory=dict)
    #: The torch-free runtime against the PyTorch path (``benchmark.runtime``, ``--runtime``).
    runtime: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the whole run --------------------------------------------------------------------------------
def run_benchmark(cfg: BenchmarkConfig, progress: bool = True) -> BenchmarkResult:
    """Generate (or reuse) the synthetic set and measure loader, training and inference."""
    cfg = cfg.resolved()
    say = print if progress else (lambda *a, **k: None)
    started = time.perf_counter()
    pl.seed_everything(cfg.seed, verbose=False)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    result = BenchmarkResult(
        machine=machine_info(cfg.device),
        config=json.loads(json.dumps(asdict(cfg), default=str)),  # paths as strings
    )
    say(f"synthetic data in {cfg.work_dir} ...", flush=True)
    manifest = ensure_synthetic(
        cfg.work_dir / "synthetic",
        clips_per_class=cfg.clips_per_class,
        duration=cfg.clip_seconds,
        seed=cfg.seed,
        val_fraction=0.0,  # still one validation clip per class; every other clip trains
        test_fraction=0.0,
    )
    dm = MusicDataModule(
        str(manifest),
        data_dir=str(cfg.work_dir),
        crop_seconds=cfg.crop_seconds,
        num_workers=0,
        augment=False,
    )
    build_start = time.perf_counter()
    dm.setup("fit")
    cache_seconds = time.perf_counter() - build_start
    defaults = model_defaults()
    frontend = LogMel(LogMelSettings.of(defaults.get("logmel")), dm.hparams.sample_rate)
    say("loader: naive vs cached ...", flush=True)
    result.loader = measure_loader(dm, cfg, frontend)
    result.loader["cache_seconds"] = cache_seconds
    result.loader["cache_built"] = bool(dm.cache.built)
    for batch_size in cfg.batch_sizes:
        say(f"training: batch {batch_size} ...", flush=True)
        result.train.append(measure_training(manifest, cfg, batch_size))
    say("inference: checkpoint of the default model, 30 s clip, cold start ...", flush=True)
    checkpoint = cfg.work_dir / "bench.ckpt"
    infer_cfg = BenchmarkConfig(
        **{
            **asdict(cfg),
            "crop_seconds": float(
                (yaml.safe_load(DEFAULT_CONFIG.read_text()).get("data") or {}).get(
                    "crop_seconds", DEFAULT_CROP_SECONDS
                )
            ),
            "warmup_steps": 1,
            "train_steps": 1,
            "compile": False,
        }
    )
    measure_training(manifest, infer_cfg, cfg.batch_sizes[0], save_to=checkpoint)
    clip = write_long_clip(cfg.work_dir / f"clip{cfg.infer_seconds:g}s.mp3", cfg.infer_seconds)
    result.inference = measure_inference(checkpoint, clip, cfg)
    for path in cfg.checkpoints:
        say(f"inference: {path} ...", flush=True)
        result.inference_checkpoints.append(
            {"checkpoint": str(path), **measure_inference(path, clip, cfg)}
        )
    if cfg.teacher_clips:
        say("teachers: labelling cost per clip ...", flush=True)
        result.teachers = measure_teachers(cfg.work_dir, cfg.teacher_clips)
    if cfg.library_files:
        say(f"library: {cfg.library_files} files, musicnn, a long file's memory ...", flush=True)
        library = LibraryBenchConfig(
            files=cfg.library_files,
            musicnn_files=cfg.library_musicnn_files,
            long_seconds=cfg.library_long_seconds,
        )
        result.library_speed = measure_library(checkpoint, cfg.work_dir, library, cfg.device)
    result.machine["load_average_end"] = load_average()
    result.wall_seconds = time.perf_counter() - started
    return result


def format_table(result: BenchmarkResult) -> str:
    """One table of every headline number."""
    m, lo, inf = result.machine, result.loader, result.inference
    where = f"{m['device']}" + (f" ({m['gpu']})" if "gpu" in m else "")
    rows = loader_rows(lo) if lo else []
    for t in result.train:
        memory = (
            f"{t['peak_cuda_memory_mb']:,.0f} MiB CUDA"
            if "peak_cuda_memory_mb" in t
            else f"{t['peak_rss_mb']:,.0f} MiB RSS"
        )
        rows.append(
            (
                "train",
                f"batch {t['batch_size']} x {t['crop_seconds']:g} s, {t['precision']}"
                + (", channels_last" if t["channels_last"] else "")
                + (", compiled" if t["compile"] else ""),
                f"{t['clips_per_s']:,.1f} clips/s, compute {t['compute_share']:.0%}, peak {memory}",
            )
        )
    if inf:
        rows += inference_rows(inf)
    for extra in result.inference_checkpoints:
        rows += inference_rows(extra, Path(extra["checkpoint"]).parent.name or extra["checkpoint"])
    if result.teachers:
        rows += teacher_rows(result.teachers)
    rows += library_rows(result.library_speed)
    rows += runtime_rows(result.runtime)
    width = max(len(r[1]) for r in rows)
    pw = max(7, *(len(r[0]) + 1 for r in rows))  # "runtime" needs a space after it
    load = m.get("load_average_start")
    lines = [
        f"audiotagger benchmark on {where}: {m['cpu_count']} CPU cores, torch {m['torch']}, "
        f"{result.wall_seconds:.0f} s" + (f", load average {load[0]:.1f} at start" if load else ""),
        f"{'part':<{pw}}{'measure':<{width + 2}}value",
    ]
    lines += [f"{part:<{pw}}{what:<{width + 2}}{value}" for part, what, value in rows]
    return "\n".join(lines)


def write_json(result: BenchmarkResult, path: Path) -> Path:
    return write_json_atomic(path, result.to_dict())


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit banners and warnings about 5-step runs, which would bury the
    table; log levels and warning filters are restored on exit."""
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "datamodules")
    levels = {name: logging.getLogger(name).level for name in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for name in names:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
