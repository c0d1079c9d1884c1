"""Measure the speed that matters: data loading, training throughput and inference latency.

Everything runs in one process on one synthetic dataset, so ratios are meaningful even on a
machine shared with other work:

* **loader**: clips/s of the naive path (decode the file, resample, random crop, log-mel on the
  CPU, per item) against the cached path (a random crop read from the int16 memmap, log-mel later
  on the device, batched), over the same clips, and their ratio;
* **train**: clips/s of real ``Trainer.fit`` steps fed from the cache at two batch sizes, the
  share of step time spent computing rather than waiting for data, and peak memory (CUDA
  ``max_memory_allocated``, or the process' peak RSS on CPU);
* **inference**: real-time factor of a 30 s clip (model forward over its windows only, and the
  full ``Tagger.predict_file`` including mp3 decoding) and the cold-start wall time of
  ``scripts/predict_clip.py`` in a fresh process.

On CUDA it trains in bf16 with ``channels_last``; on CPU in float32. ``scripts/benchmark.py`` is
the command line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from datamodules.audio import fix_length, load_audio
from datamodules.io import write_json_atomic
from datamodules.loading.augmentation import label_preserving_augment
from datamodules.loading.datamodule import MusicDataModule
from datamodules.manifest import read_manifest
from datamodules.schema import DEFAULT_CROP_SECONDS, TASK_FIELDS
from datamodules.synthetic import ensure_synthetic, render_clip
from lightning_module.benchmark.library_speed import (
    LibraryBenchConfig,
    library_rows,
    measure_library,
)
from lightning_module.benchmark.runtime import runtime_rows
from lightning_module.benchmark.teachers import measure_teachers, teacher_rows
from lightning_module.inference.device import resolve_device
from lightning_module.inference.tagger import Tagger
from lightning_module.model.frontend import LogMel
from lightning_module.training.module import MusicTagger

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "train.yaml"
PREDICT_SCRIPT = REPO_ROOT / "scripts" / "predict_clip.py"
#: Model settings that are not read from the config's ``model`` section.


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


# -- helpers --------------------------------------------------------------------------------------
def machine_info(device: str) -> dict[str, Any]:
    """Where the numbers come from: CPU count, GPU name, library versions, load at the start."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "device": device,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``VmHWM``; else ``ru_maxrss``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_run(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds of a fresh process running ``command``."""
    start, start_cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    return time.perf_counter() - start, _children_cpu() - start_cpu, done


def model_defaults(config_path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The ``model`` section of the default training config: the model users actually train."""
    config = yaml.safe_load(config_path.read_text()) or {}
    return dict(config.get("model") or {})


# -- loader ---------------------------------------------------------------------------------------
class NaiveDataset(Dataset):
    """The pipeline the cache replaces: every item decodes its file and computes a CPU log-mel.

    Items: (1, n_mels, frames) float32 log-mel of a random ``crop`` samples of the clip.
    """

    def __init__(self, paths: list[str], sample_rate: int, crop: int, frontend: LogMel) -> None:
        self.paths, self.sample_rate, self.crop, self.frontend = paths, sample_rate, crop, frontend

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        wave = load_audio(self.paths[index], self.sample_rate)
        start = int(torch.randint(0, max(wave.size - self.crop, 0) + 1, ()))
        crop = torch.from_numpy(fix_length(wave[start : start + self.crop], self.crop))
        with torch.no_grad():
            return self.frontend(crop[None])[0]


def _loader_rate(dataset: Dataset, batch_size: int, passes: int = 1, on_batch=None) -> float:
    """Clips per second of iterating ``dataset`` ``passes`` times in this process."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    next(iter(loader))  # warm-up: opens the memmap, first decode
    start, n = time.perf_counter(), 0
    for _ in range(passes):
        for batch in loader:
            if on_batch is not None:
                on_batch(batch)
            n += len(batch["audio"] if isinstance(batch, dict) else batch)
    return n / (time.perf_counter() - start)


def measure_loader(dm: MusicDataModule, cfg: BenchmarkConfig, frontend: LogMel) -> dict[str, Any]:
    """Naive vs cached loading of the train clips, one process, no workers, one thread.

    One torch thread, as in a DataLoader worker, so the rates are per core and the ratio does not
    depend on how busy the other cores are.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_loader(dm, cfg, frontend)
    finally:
        torch.set_num_threads(threads)


def _measure_loader(dm: MusicDataModule, cfg: BenchmarkConfig, frontend: LogMel) -> dict:
    dataset = dm.datasets["train"]
    dataset.augment = None
    rows = dm.split_rows("train")
    crop = dataset.crop_samples
    naive = NaiveDataset(rows["audio_path"].tolist(), dm.hparams.sample_rate, crop, frontend)
    naive_rate = _loader_rate(naive, cfg.loader_batch)
    cached_rate = _loader_rate(dataset, cfg.loader_batch, cfg.cached_repeats)

    device_frontend = frontend.to(cfg.device)

    def mel_on_device(batch: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            device_frontend(batch["audio"].to(cfg.device, non_blocking=True))
        _sync(cfg.device)

    cached_mel_rate = _loader_rate(
        dataset, cfg.loader_batch, max(1, cfg.cached_repeats // 4), mel_on_device
    )
    dataset.augment = label_preserving_augment()
    augment_rate = _loader_rate(dataset, cfg.loader_batch)
    dataset.augment = None
    return {
        "clips": len(rows),
        "crop_seconds": cfg.crop_seconds,
        "naive_clips_per_s": naive_rate,
        "cached_clips_per_s": cached_rate,
        "ratio_cached_over_naive": cached_rate / naive_rate,
        "cached_with_device_mel_clips_per_s": cached_mel_rate,
        "ratio_with_device_mel": cached_mel_rate / naive_rate,
        "cached_with_augment_clips_per_s": augment_rate,
        "mel_device": cfg.device,
        "torch_threads": torch.get_num_threads(),
    }


# -- training -------------------------------------------------------------------------------------
class StepTimer(pl.Callback):
    """Times training steps after ``warmup``: wall time, and the part not spent waiting for data.

    The step's compute time runs from ``on_train_batch_start`` (the batch has arrived) to
    ``on_train_batch_end`` after a CUDA synchronise; the rest of the wall time is data wait.
    """

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.compute: list[float] = []
        self.first: float | None = None
        self.last: float | None = None
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(self.device)
        now = time.perf_counter()
        if batch_idx + 1 == self.warmup:
            self.first = now  # timing starts when the last warm-up step ends
        elif batch_idx + 1 > self.warmup:
            self.compute.append(now - self._start)
            self.last = now


def measure_training(
    manifest: Path, cfg: BenchmarkConfig, batch_size: int, save_to: Path | None = None
) -> dict[str, Any]:
    """Clips/s of ``cfg.train_steps`` real ``Trainer.fit`` steps of the default model."""
    steps = cfg.warmup_steps + cfg.train_steps
    n_train = int((read_manifest(manifest, check_audio=False)["split"] == "train").sum())
    dm_kwargs: dict[str, Any] = {
        "data_dir": str(cfg.work_dir),
        "crop_seconds": cfg.crop_seconds,
        "batch_size": batch_size,
        # enough random crops per clip for every step to get a full batch
        "crops_per_clip": max(1, math.ceil(steps * batch_size / max(n_train, 1))),
        "augment": cfg.augment,
    }
    if cfg.num_workers is not None:
        dm_kwargs["num_workers"] = cfg.num_workers
    dm = MusicDataModule(str(manifest), **dm_kwargs)
    model = MusicTagger(
        **{**model_defaults(), **{k: getattr(dm, k) for k in TASK_FIELDS}},
        sample_rate=dm.hparams.sample_rate,
        crop_seconds=cfg.crop_seconds,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
    )
    timer = StepTimer(cfg.warmup_steps, cfg.device)
    trainer = pl.Trainer(
        accelerator="gpu" if cfg.device.startswith("cuda") else "cpu",
        devices=1,
        precision=cfg.precision,
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if cfg.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_reset = _reset_peak_rss()
    trainer.fit(model, datamodule=dm)
    if timer.first is None or timer.last is None or not timer.compute:
        raise RuntimeError(f"training ran {trainer.global_step} steps, fewer than {steps}")
    seconds = timer.last - timer.first
    result = {
        "batch_size": batch_size,
        "crop_seconds": cfg.crop_seconds,
        "precision": cfg.precision,
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "num_workers": dm.loader_workers,
        "augment": cfg.augment,
        "steps_timed": len(timer.compute),
        "clips_per_s": len(timer.compute) * batch_size / seconds,
        "compute_share": min(1.0, sum(timer.compute) / seconds),
    }
    if cfg.device.startswith("cuda"):
        result["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mb"] = _peak_rss_mb()
    result["peak_rss_scope"] = "this run" if rss_reset else "process lifetime"
    if save_to is not None:
        trainer.save_checkpoint(save_to, weights_only=True)
    return result


# -- inference ------------------------------------------------------------------------------------
def write_long_clip(path: Path, seconds: float, seed: int = 0) -> Path:
    """A synthetic music-like mp3 of ``seconds`` at 44.1 kHz stereo, as users' files are."""
    samples, _ = render_clip("rock", "happy", seconds, 44100, np.random.default_rng(seed))
    stereo = np.stack([samples, np.roll(samples, 7)], axis=1).astype(np.float32)
    sf.write(path, stereo, 44100, format="MP3", subtype="MPEG_LAYER_III")
    return path


def measure_inference(checkpoint: Path, clip: Path, cfg: BenchmarkConfig) -> dict[str, Any]:
    """Warm real-time factors of forward-only and full ``predict_file``, and the cold start."""
    tagger = Tagger.from_checkpoint(checkpoint, device=cfg.device)
    wave = tagger.load(clip)
    seconds = wave.shape[-1] / tagger.sample_rate

    def forward() -> None:
        tagger.window_outputs(wave)
        _sync(cfg.device)

    forward_s, forward_cpu = _median_seconds(forward, cfg.repeats)
    decode_s, _ = _median_seconds(lambda: tagger.load(clip), cfg.repeats)
    predict_s, predict_cpu = _median_seconds(lambda: tagger.predict_file(clip), cfg.repeats)
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
        wall, cpu, done = _timed_run(command)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{PREDICT_SCRIPT.name} failed ({done.returncode}): {last}")
        cold.append(wall)
        cold_cpu.append(cpu)
        import_s.append(
            _timed_run([sys.executable, "-c", "import lightning_module.inference.tagger"])[0]
        )
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
    frontend = LogMel(
        sample_rate=dm.hparams.sample_rate,
        **{k: defaults[k] for k in ("n_fft", "hop_length", "n_mels") if k in defaults},
    )
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
    result.machine["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    result.wall_seconds = time.perf_counter() - started
    return result


def _inference_rows(inf: dict[str, Any], name: str = "") -> list[tuple[str, str, str]]:
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


def _loader_rows(lo: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (
            "loader",
            f"naive: decode+resample+CPU mel ({lo['clips']} clips)",
            f"{lo['naive_clips_per_s']:,.1f} clips/s",
        ),
        ("loader", "cached: crop from int16 memmap", f"{lo['cached_clips_per_s']:,.0f} clips/s"),
        ("loader", "ratio cached / naive", f"{lo['ratio_cached_over_naive']:,.1f}x"),
        (
            "loader",
            f"cached + batched mel on {lo['mel_device']}",
            f"{lo['cached_with_device_mel_clips_per_s']:,.0f} clips/s"
            f" ({lo['ratio_with_device_mel']:,.1f}x)",
        ),
        (
            "loader",
            "cached + waveform augmentation (CPU)",
            f"{lo['cached_with_augment_clips_per_s']:,.0f} clips/s",
        ),
        (
            "loader",
            "cache build (first run) / open",
            f"{lo['cache_seconds']:.2f} s ({'built' if lo['cache_built'] else 'reused'})",
        ),
    ]


def format_table(result: BenchmarkResult) -> str:
    """One table of every headline number."""
    m, lo, inf = result.machine, result.loader, result.inference
    where = f"{m['device']}" + (f" ({m['gpu']})" if "gpu" in m else "")
    rows = _loader_rows(lo) if lo else []
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
        rows += _inference_rows(inf)
    for extra in result.inference_checkpoints:
        rows += _inference_rows(extra, Path(extra["checkpoint"]).parent.name or extra["checkpoint"])
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
