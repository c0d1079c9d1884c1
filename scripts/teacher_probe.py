"""Frozen musicnn embeddings + logistic regression on a manifest's splits (the teacher's line).

    python scripts/convert_musicnn.py --out checkpoints/msd_musicnn.pt
    python scripts/teacher_probe.py data/real/manifest.csv --weights checkpoints/msd_musicnn.pt \
        --out reports/teacher_probe

Fits on train, picks C on val, scores test per source; prints a Markdown table and writes
results.json / results.md into --out. The window features are cached per clip in --features-cache
(default --out/features; re-runs are free): give it the accurate teacher's DIR/features to share
them (same weights, --max-patches equal to its max_windows).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from datamodules.audio import load_audio
from datamodules.manifest import ManifestError, read_manifest
from lightning_module.evaluation.teacher_probe import format_results, probe
from lightning_module.model.backbones.musicnn import MUSICNN_SAMPLE_RATE
from lightning_module.teacher.clip_descriptor import TeacherDescriptor, describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", help="manifest with train/val/test splits")
    parser.add_argument("--weights", required=True, help="file from scripts/convert_musicnn.py")
    parser.add_argument("--out", default="reports/teacher_probe", help="report folder")
    parser.add_argument("--max-patches", type=int, default=4, help="3 s patches per clip")
    parser.add_argument(
        "--features-cache", default=None, help="folder of cached window features (--out/features)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        rows = read_manifest(args.manifest)
        descriptor = TeacherDescriptor(args.weights, max_patches=args.max_patches)
    except (ManifestError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rate = MUSICNN_SAMPLE_RATE
    x, ids = describe(
        rows,
        lambda path: torch.from_numpy(load_audio(path, rate, min_duration=1.0)),
        descriptor,
        cache=args.features_cache or out / "features",
        progress=not args.quiet,
    )
    kept = rows.set_index("track_id").loc[ids].reset_index()
    results = probe(kept, x)
    table = format_results(results)
    command = shlex.join(["python", "scripts/teacher_probe.py", *(argv or sys.argv[1:])])
    (out / "results.json").write_text(
        json.dumps({"command": command, "clips": len(ids), "results": results}, indent=2) + "\n"
    )
    (out / "results.md").write_text(f"`{command}`\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
