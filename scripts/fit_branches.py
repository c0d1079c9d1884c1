"""Refit the tempo and key branches of a trained model on listener tempi and annotated keys.

python scripts/fit_branches.py checkpoints/refit/tagger.ckpt \
    --manifest data/real/features/manifest.csv --manifest data/real/gtzan3/manifest.csv \
    --manifest data/real/gtzan7/manifest.csv --out checkpoints/refit/tagger+branches.ckpt
"""

import argparse
import sys

from lightning_module.inference.checkpoint import CheckpointError
from lightning_module.training.branch_fit import fit_branches
from lightning_module.training.branch_report import format_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="the trained model (a .ckpt)")
    parser.add_argument(
        "--manifest",
        action="append",
        required=True,
        help="manifest with tempo/key labels (repeat; the first decides each track's split)",
    )
    parser.add_argument("--out", required=True, help="the checkpoint to write")
    parser.add_argument(
        "--work-dir", help="keeps the branch inputs for a rerun (default: beside --out)"
    )
    parser.add_argument(
        "--fit-on",
        choices=("all", "train"),
        default="all",
        help="clips the chosen branches are finally fitted on: all (to ship) or train (to score "
        "with evaluate.py on val/test)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    work_dir = args.work_dir or f"{args.out}.work"
    try:
        report = fit_branches(
            args.checkpoint,
            args.manifest,
            args.out,
            work_dir,
            progress=not args.quiet,
            fit_on=args.fit_on,
        )
    except (CheckpointError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
