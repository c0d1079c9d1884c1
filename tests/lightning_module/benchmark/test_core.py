"""The benchmark runs end to end on a tiny synthetic set (no timing is asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from datamodules.manifest import read_manifest
from lightning_module.inference.tagger import load_checkpoint
from scripts.benchmark import main


def _tiny_args(work_dir: Path, out: Path, device: str) -> list[str]:
    return [
        f"--work-dir={work_dir}",
        f"--out={out}",
        f"--device={device}",
        "--clips-per-class=2",
        "--clip-seconds=2",
        "--crop-seconds=1",
        "--batch-sizes",
        "2",
        "4",
        "--warmup-steps=1",
        "--train-steps=2",
        "--num-workers=0",
        "--cached-repeats=2",
        "--infer-seconds=4",
        "--repeats=1",
        "--cold-runs=1",
        "--no-library",  # measured on its own in test_library_speed.py
    ]


def test_benchmark_runs_end_to_end_and_writes_sane_json(
    tmp_path: Path, capsys: pytest.CaptureFixture, trained_checkpoint: Path
) -> None:
    out = tmp_path / "result.json"
    args = [*_tiny_args(tmp_path / "bench", out, "cpu"), f"--checkpoint={trained_checkpoint}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ratio cached / naive" in printed and "cold start" in printed
    # A user's checkpoint gets its own rows, labelled with its folder and its model.
    assert f"{trained_checkpoint.parent.name}: resnet" in printed

    result = json.loads(out.read_text())
    assert {"machine", "config", "loader", "train", "inference"} <= set(result)
    assert result["machine"]["device"] == "cpu" and result["machine"]["cpu_count"] >= 1

    loader = result["loader"]
    manifest = read_manifest(tmp_path / "bench" / "synthetic" / "manifest.csv")
    assert loader["clips"] == (manifest["split"] == "train").sum() == 24  # 2 per class, 1 in val
    for key in ("naive_clips_per_s", "cached_clips_per_s", "cached_with_augment_clips_per_s"):
        assert math.isfinite(loader[key]) and loader[key] > 0
    assert loader["ratio_cached_over_naive"] == pytest.approx(
        loader["cached_clips_per_s"] / loader["naive_clips_per_s"]
    )
    assert loader["cache_built"] is True  # a fresh work dir: the cache was built in this run

    train = result["train"]
    assert [t["batch_size"] for t in train] == [2, 4]
    for t in train:
        assert t["precision"] == "32-true" and t["channels_last"] is False
        assert t["steps_timed"] == 2 and t["clips_per_s"] > 0
        assert 0 < t["compute_share"] <= 1
        assert t["peak_rss_mb"] > 100  # torch alone takes more than that
        assert "peak_cuda_memory_mb" not in t

    inference = result["inference"]
    assert inference["clip_seconds"] == pytest.approx(4.0, abs=0.2)
    assert inference["windows"] == 2  # 4 s in 3 s windows every 1.5 s: at 0 s and at the end
    assert inference["rtf_forward"] == pytest.approx(
        inference["forward_seconds"] / inference["clip_seconds"]
    )
    assert inference["predict_clip_seconds"] > 0 and inference["cold_start_seconds"] > 0
    assert len(inference["cold_start_runs"]) == 1 and inference["import_seconds"] > 0
    # a fresh process pays at least for importing torch: CPU time of the child was counted
    assert inference["cold_start_cpu_seconds"] > 0.2
    assert inference["predict_clip_cpu_seconds"] > 0 and inference["forward_cpu_seconds"] > 0

    (extra,) = result["inference_checkpoints"]
    assert extra["checkpoint"] == str(trained_checkpoint) and extra["backbone"] == "resnet"
    assert extra["windows"] >= 2 and extra["cold_start_seconds"] > 0 and extra["parameters"] > 0
    assert inference["backbone"] == "resnet" and inference["window_seconds"] == 3.0

    hp = load_checkpoint(tmp_path / "bench" / "bench.ckpt")["hyper_parameters"]
    assert hp["crop_seconds"] == 3.0 and len(hp["genre_names"]) == 6  # the default recipe's model


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_benchmark_on_cuda_trains_in_bf16_and_reports_cuda_memory(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert main(_tiny_args(tmp_path / "bench", out, "cuda")) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["gpu"] and result["loader"]["mel_device"] == "cuda"
    for t in result["train"]:
        assert t["precision"] == "bf16-mixed" and t["channels_last"] is True
        assert t["peak_cuda_memory_mb"] > 0 and t["clips_per_s"] > 0
    assert result["inference"]["device"] == "cuda"
