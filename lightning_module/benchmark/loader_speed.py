"""The loader rows: clips/s of the naive path (decode the file, resample, random crop, log-mel on
the CPU, per item) against the cached path (a random crop read from the int16 memmap, log-mel
later on the device, batched), over the same clips, and their ratio.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.audio import fix_length, load_audio
from datamodules.loading.augmentation import label_preserving_augment
from datamodules.loading.datamodule import MusicDataModule
from lightning_module.benchmark.measure import sync_device
from lightning_module.model.frontend import LogMel

if TYPE_CHECKING:
    from lightning_module.benchmark.core import BenchmarkConfig


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


def _measure_loader(dm: MusicDataModule, cfg: BenchmarkConfig, frontend: LogMel) -> dict[str, Any]:
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
        sync_device(cfg.device)

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


def loader_rows(lo: dict[str, Any]) -> list[tuple[str, str, str]]:
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
