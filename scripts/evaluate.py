"""Evaluate a checkpoint on a manifest: per-source scores next to baselines, as JSON + Markdown.

python scripts/evaluate.py checkpoints/real/best-*.ckpt data/real/manifest.csv --split test \
    --out reports/real

Writes report.json, report.md and confusion-matrix PNGs into --out. Clips are tagged whole
(windowed, averaged) through the same code as predict_clip. ``--split all`` scores every row
(e.g. a manifest the model never saw); the handcrafted baseline then needs --no-baseline or a
manifest with a train split.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from datamodules.audio import AudioError
from datamodules.manifest import ManifestError
from lightning_module.evaluation.evaluator import Evaluator, write_report
from lightning_module.inference.errors import CheckpointError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="MusicTagger checkpoint (.ckpt)")
    parser.add_argument("manifest", help="manifest to evaluate on (.csv/.parquet)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    parser.add_argument("--out", default="reports/eval", help="report folder")
    parser.add_argument("--cache-dir", help="audio cache (default: the training run's)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the handcrafted baseline")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        ["python", "scripts/evaluate.py", *(argv if argv is not None else sys.argv[1:])]
    )
    try:
        evaluator = Evaluator(
            args.checkpoint,
            args.manifest,
            split=args.split,
            cache_dir=args.cache_dir,
            baseline=not args.no_baseline,
            device=args.device,
        )
        report = evaluator.run(command=command)
    except (CheckpointError, ManifestError, AudioError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    paths = write_report(report, args.out)
    print(paths["markdown"].read_text())
    print(f"wrote {paths['json']} and {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
