"""Measure data loading, training throughput and inference latency; print a table, write JSON.

python scripts/benchmark.py                       # CPU or CUDA, whichever is here (< 5 min on CPU)
python scripts/benchmark.py --batch-sizes 512 2048 --out reports/bench-h100.json
python scripts/benchmark.py --checkpoint checkpoints/real/last.ckpt   # + inference of your models
python scripts/benchmark.py --service      # the HTTP service vs a predict_clip process per file
python scripts/benchmark.py --tags --similarity   # tag writing per file; exact vs HNSW search
python scripts/benchmark.py --runtime --checkpoint x.ckpt   # torch-free runtime vs PyTorch path
python scripts/benchmark.py --paths        # path playlists vs baselines on ../shared/data
python scripts/benchmark.py --catalogue    # Ray Data (1 and 2 CPUs) vs the --workers folder run
python scripts/benchmark.py --beets        # `beet audiotag` vs beets' own autobpm, files/s
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# As in predict_clip.py, so the warm inference numbers are what that script gets: idle OpenMP
# threads sleep instead of spinning, which on a busy machine is several times faster.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.benchmark.core import (  # noqa: E402
    BenchmarkConfig,
    format_table,
    quiet_lightning,
    run_benchmark,
    write_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = BenchmarkConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=defaults.work_dir,
        help="synthetic data, cache and checkpoint (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default: <work-dir>/benchmark.json)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--clips-per-class",
        type=int,
        default=defaults.clips_per_class,
        help="synthetic clips per genre x mood pair (default: %(default)s)",
    )
    parser.add_argument("--clip-seconds", type=float, default=defaults.clip_seconds)
    parser.add_argument(
        "--crop-seconds",
        type=float,
        default=defaults.crop_seconds,
        help="training clip length (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs=2,
        help="two training batch sizes (default: CPU 8 32, CUDA 256 1024)",
    )
    parser.add_argument("--train-steps", type=int, default=defaults.train_steps)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--num-workers", type=int, help="DataLoader workers while training")
    parser.add_argument("--precision", help="default: CPU 32-true, CUDA bf16-mixed")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="default: on for CUDA, off for CPU",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument(
        "--augment", action="store_true", help="waveform augmentation while training"
    )
    parser.add_argument("--cached-repeats", type=int, default=defaults.cached_repeats)
    parser.add_argument("--infer-seconds", type=float, default=defaults.infer_seconds)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--cold-runs", type=int, default=defaults.cold_runs)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="also measure inference of this trained checkpoint (repeatable)",
    )
    parser.add_argument(
        "--service",
        action="store_true",
        help="only the tagging service: requests/s and latency of scripts/serve.py under "
        "concurrent uploads, against predict_clip.py in a fresh process per file "
        "(--checkpoint: the model to serve; --infer-seconds: clip length)",
    )
    parser.add_argument("--service-requests", type=int, default=200)
    parser.add_argument(
        "--library-files",
        type=int,
        default=defaults.library_files,
        help="30 s mp3/m4a/flac files of the library rows (default: %(default)s)",
    )
    parser.add_argument(
        "--library-musicnn-files",
        type=int,
        help="how many of them musicnn's extractor tags, when installed (default: all)",
    )
    parser.add_argument(
        "--library-long-seconds",
        type=float,
        default=defaults.library_long_seconds,
        help="length of the file whose peak RSS is measured (0: skip; default: %(default)s)",
    )
    parser.add_argument("--no-library", action="store_true", help="skip the library rows")
    parser.add_argument("--service-clients", type=int, default=16)
    parser.add_argument(
        "--tags", action="store_true", help="only tag writing: ms per file (write_tags --apply)"
    )
    parser.add_argument("--tag-files", type=int, default=200, help="files --tags writes")
    parser.add_argument(
        "--similarity",
        action="store_true",
        help="only 'more like this': exact vs HNSW search; with --checkpoint also copy/excerpt "
        "retrieval and genre agreement on ../shared/data",
    )
    parser.add_argument(
        "--paths",
        action="store_true",
        help="only path playlists (similar path, GET /v1/path): step sizes and label continuity "
        "against random-order and straight-line baselines on ../shared/data's GTZAN and 4Q clips "
        "(the shipped model, or --checkpoint)",
    )
    parser.add_argument(
        "--runtime",
        action="store_true",
        help="only the torch-free runtime (issue 25) against the PyTorch path: install size of a "
        "runtime-only venv vs this one, cold `audiotagger tag` (ONNX) vs predict_clip.py "
        "--checkpoint, peak RSS of a long file, warm files/s vs decode-only floors "
        "(--checkpoint: the model, exported to ONNX; --cold-runs, --repeats, --infer-seconds)",
    )
    parser.add_argument("--runtime-files", type=int, default=20, help="mp3s of the folder rows")
    parser.add_argument(
        "--runtime-long-seconds",
        type=float,
        default=7200.0,
        help="length of the file whose peak RSS the runtime rows measure (0: skip)",
    )
    parser.add_argument(
        "--runtime-no-venv",
        action="store_true",
        help="skip building the runtime venv (no package index): no install row, and the "
        "runtime command runs in this venv",
    )
    parser.add_argument(
        "--runtime-full-venv", type=Path, help="the full venv (default: the running one)"
    )
    parser.add_argument(
        "--catalogue",
        action="store_true",
        help="only the catalogue rows: Ray Data on this machine (1 and 2 CPUs) vs the "
        "--workers 2 folder run on the same files (needs the `catalogue` extra)",
    )
    parser.add_argument("--catalogue-files", type=int, default=200, help="files it tags")
    parser.add_argument(
        "--beets",
        action="store_true",
        help="only the beets plugin: `beet audiotag` vs beets' autobpm on the same files",
    )
    parser.add_argument("--beets-files", type=int, default=24, help="files of the --beets row")
    parser.add_argument("--beets-seconds", type=float, default=180.0, help="their length")
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.service:
        return service_main(args, argv)
    if args.runtime:
        return runtime_main(args, argv)
    if args.paths:
        from lightning_module.benchmark.paths import run_paths_main

        return run_paths_main(args.work_dir, args.checkpoint[0] if args.checkpoint else None)
    if args.catalogue:
        return catalogue_main(args, argv)
    if args.beets:
        from lightning_module.benchmark.beets_speed import (
            BeetsBenchConfig,
            format_beets_table,
            run_beets_benchmark,
        )

        config = BeetsBenchConfig(args.work_dir, args.beets_files, args.beets_seconds)
        print(format_beets_table(run_beets_benchmark(config)))
        print(f"wrote {Path(args.work_dir) / 'beets_benchmark.json'}")
        return 0
    if args.tags or args.similarity:
        from lightning_module.benchmark.tags_and_similarity import run_library_benchmarks

        checkpoint = args.checkpoint[0] if args.checkpoint else None
        run_library_benchmarks(
            args.work_dir, args.tags, args.similarity, checkpoint, args.tag_files
        )
        return 0
    config = BenchmarkConfig(
        work_dir=args.work_dir,
        device=args.device,
        clips_per_class=args.clips_per_class,
        clip_seconds=args.clip_seconds,
        crop_seconds=args.crop_seconds,
        batch_sizes=tuple(args.batch_sizes) if args.batch_sizes else None,
        train_steps=args.train_steps,
        warmup_steps=args.warmup_steps,
        num_workers=args.num_workers,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        augment=args.augment,
        cached_repeats=args.cached_repeats,
        infer_seconds=args.infer_seconds,
        repeats=args.repeats,
        cold_runs=args.cold_runs,
        checkpoints=tuple(args.checkpoint),
        library_files=0 if args.no_library else args.library_files,
        library_musicnn_files=args.library_musicnn_files,
        library_long_seconds=args.library_long_seconds,
    )
    with quiet_lightning():
        result = run_benchmark(config)
    result.config["command"] = " ".join(["scripts/benchmark.py", *(argv or sys.argv[1:])])
    out = write_json(result, args.out or Path(args.work_dir) / "benchmark.json")
    print(format_table(result))
    print(f"wrote {out}")
    return 0


def runtime_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    import time

    from lightning_module.benchmark.core import BenchmarkResult, machine_info
    from lightning_module.benchmark.runtime import RuntimeBenchConfig, measure_runtime

    if not args.checkpoint:
        print("error: --runtime needs --checkpoint (the PyTorch path's model)", file=sys.stderr)
        return 2
    config = RuntimeBenchConfig(
        work_dir=args.work_dir,
        checkpoint=args.checkpoint[0],
        files=args.runtime_files,
        seconds=args.infer_seconds,
        repeats=args.repeats,
        cold_runs=args.cold_runs,
        long_seconds=args.runtime_long_seconds,
        venv=not args.runtime_no_venv,
        full_venv=args.runtime_full_venv,
    )
    start = time.perf_counter()
    result = BenchmarkResult(machine=machine_info("cpu"), config={})
    result.runtime = measure_runtime(config)
    result.config = {
        "command": " ".join(["scripts/benchmark.py", *(argv or sys.argv[1:])]),
        **result.runtime["config"],
    }
    result.machine["load_average_end"] = list(os.getloadavg())
    result.wall_seconds = time.perf_counter() - start
    out = write_json(result, args.out or Path(args.work_dir) / "runtime_benchmark.json")
    print(format_table(result))
    print(f"wrote {out}")
    return 0


def catalogue_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    from datamodules.io import write_json_atomic
    from lightning_module.benchmark.catalogue import catalogue_rows, measure_catalogue

    result = measure_catalogue(args.work_dir, args.catalogue_files)
    result["command"] = " ".join(["scripts/benchmark.py", *(argv or sys.argv[1:])])
    out = args.out or Path(args.work_dir) / "catalogue_benchmark.json"
    write_json_atomic(out, result)
    width = max(len(name) for name, _ in catalogue_rows(result))
    print("\n".join(f"{name:<{width}}  {value}" for name, value in catalogue_rows(result)))
    print(f"wrote {out}")
    return 0


def service_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    from lightning_module.benchmark.service import (
        ServiceBenchmarkConfig,
        format_service_table,
        run_service_benchmark,
        write_service_json,
    )

    config = ServiceBenchmarkConfig(
        work_dir=args.work_dir,
        checkpoint=args.checkpoint[0] if args.checkpoint else None,
        clip_seconds=args.infer_seconds,
        requests=args.service_requests,
        clients=args.service_clients,
        device=args.device or "cpu",
    )
    with quiet_lightning():
        result = run_service_benchmark(config)
    result["config"]["command"] = " ".join(["scripts/benchmark.py", *(argv or sys.argv[1:])])
    out = write_service_json(result, args.out or Path(args.work_dir) / "service_benchmark.json")
    print(format_service_table(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
