"""Tag a catalogue on Ray Data: millions of files, on this machine or a cluster, resumable.

audiotagger catalogue ~/Music --out tags/                       # Ray on this machine
audiotagger catalogue paths.txt --out tags/ --csv                # a list; also tags/tags.csv
audiotagger catalogue tracks.parquet --path-column file --out tags/
audiotagger catalogue s3list.txt --out tags/ --address ray://head:10001 --actors 8 --num-gpus 1

The rows are those of `audiotagger tag FOLDER --out tags.csv` (same columns, same values),
written as Parquet parts in OUT/tags/, with OUT/skipped.parquet listing every file not tagged
and why. A rerun resumes (same model and settings); see docs/scale.md.
"""

from __future__ import annotations

import argparse
import sys

from lightning_module.console import quiet_native_decoders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "source", help="a folder, a text file of paths (one a line), or a .parquet/.csv table"
    )
    parser.add_argument("--out", required=True, help="output folder (created; resumed if there)")
    parser.add_argument(
        "--path-column", default="path", help="table input: the column of paths (default: path)"
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--onnx", help="model exported by scripts/export_onnx.py (default: the shipped model)"
    )
    model.add_argument("--checkpoint", help="a checkpoint, run with PyTorch (`torch` extra)")
    parser.add_argument(
        "--address",
        help="the Ray cluster to join (default: $RAY_ADDRESS, else Ray started on this machine)",
    )
    parser.add_argument(
        "--num-cpus", type=int, help="Ray on this machine: CPUs it may use (default: all)"
    )
    parser.add_argument("--actors", type=int, default=1, help="model actors (default: 1)")
    parser.add_argument(
        "--cpus-per-actor", type=float, default=1.0, help="CPUs each actor reserves (default: 1)"
    )
    parser.add_argument(
        "--cpus-per-task", type=float, default=1.0, help="CPUs a decode task reserves (default: 1)"
    )
    parser.add_argument(
        "--actor-threads",
        type=int,
        help="onnxruntime threads per actor (default: --cpus-per-actor, at least 1)",
    )
    parser.add_argument(
        "--num-gpus",
        type=float,
        default=0.0,
        help="GPUs per actor (0: CPU; 1: one each; 0.5: two actors share one); the model "
        "then runs on CUDA (ONNX needs onnxruntime-gpu on the nodes)",
    )
    parser.add_argument("--files-per-task", type=int, default=4, help="files a decode task reads")
    parser.add_argument(
        "--files-per-call", type=int, default=16, help="files whose windows an actor call batches"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    parser.add_argument("--overlap", type=float, default=0.5, help="as for `audiotagger tag`")
    parser.add_argument("--offset", type=float, default=0.0, help="start at this second")
    parser.add_argument("--duration", type=float, help="tag this many seconds of each file")
    parser.add_argument("--csv", action="store_true", help="also write OUT/tags.csv, skipped.csv")
    parser.add_argument(
        "--part-rows", type=int, default=1000, help="rows per Parquet part (default: 1000)"
    )
    parser.add_argument("--force", action="store_true", help="start OUT over, whatever wrote it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("actors", "files_per_task", "files_per_call", "batch_size", "part_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, not {getattr(args, name)}")
    if args.num_gpus < 0 or args.cpus_per_actor < 0 or args.cpus_per_task <= 0:
        parser.error("--num-gpus and --cpus-per-actor must be >= 0, --cpus-per-task > 0")
    if not 0.0 <= args.overlap < 1.0:
        parser.error(f"--overlap must be in [0, 1), not {args.overlap}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_native_decoders()
    from datamodules.audio import AudioError
    from lightning_module.catalogue.inputs import CatalogueError
    from lightning_module.catalogue.pipeline import Scale
    from lightning_module.catalogue.run import CatalogueRun, tag_catalogue
    from lightning_module.inference.tagger import ModelError, default_model

    try:
        import ray  # noqa: F401 (checked here for a one-line hint; used in catalogue.pipeline)
    except ImportError:
        print(
            "error: the catalogue needs Ray: pip install 'audiotagger[catalogue]'", file=sys.stderr
        )
        return 2
    try:
        model = args.onnx or args.checkpoint or str(default_model())
        run = CatalogueRun(
            source=args.source,
            out=args.out,
            model=model,
            path_column=args.path_column,
            offset=args.offset,
            duration=args.duration,
            batch_size=args.batch_size,
            overlap=args.overlap,
            device="cuda" if args.num_gpus > 0 else "cpu",
            address=args.address,
            num_cpus=args.num_cpus,
            scale=Scale(
                actors=args.actors,
                cpus_per_actor=args.cpus_per_actor,
                gpus_per_actor=args.num_gpus,
                files_per_block=args.files_per_task,
                files_per_call=args.files_per_call,
                cpus_per_task=args.cpus_per_task,
            ),
            actor_threads=args.actor_threads,
            force=args.force,
            csv=args.csv,
            part_rows=args.part_rows,
        )
        report = tag_catalogue(run, errors=sys.stderr, progress=not args.no_progress)
    except (CatalogueError, AudioError, *ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary(args.out), file=sys.stderr)
    return 0 if report.tagged or report.kept else 2


if __name__ == "__main__":
    sys.exit(main())
