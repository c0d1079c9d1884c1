"""Where distillation loses accuracy: a student checkpoint against its teacher's outputs, per split.

python scripts/distill_fidelity.py checkpoints/student/best-*.ckpt \
    data/real/teacher/teacher_outputs.npz data/real/teacher/manifest.csv \
    --split train --split val --out reports/fidelity

Per split: how often student and teacher pick the same genre / mood, KL(teacher ‖ student), each
one's accuracy on labelled clips with the both / teacher-only / student-only / neither split, and
per feature the student-teacher correlation (lightning_module/evaluation/fidelity.py). Writes
fidelity.json and fidelity.md into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datamodules.audio import AudioError
from datamodules.loading.teacher_targets import TeacherOutputsError
from datamodules.manifest import ManifestError
from lightning_module.evaluation.fidelity import fidelity_markdown, run_fidelity
from lightning_module.evaluation.report import json_safe
from lightning_module.inference.errors import CheckpointError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="the student (a MusicTagger checkpoint)")
    parser.add_argument("teacher_outputs", help="the teacher's teacher_outputs.npz")
    parser.add_argument("manifest", help="the manifest both were built on")
    parser.add_argument(
        "--split", action="append", choices=["train", "val", "test"], help="repeatable"
    )
    parser.add_argument("--out", default="reports/fidelity", help="report folder")
    parser.add_argument("--cache-dir", help="audio cache (default: the training run's)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        by_split = run_fidelity(
            args.checkpoint,
            args.teacher_outputs,
            args.manifest,
            args.split or ["train", "val"],
            cache_dir=args.cache_dir,
            device=args.device,
        )
    except (CheckpointError, ManifestError, AudioError, TeacherOutputsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.json").write_text(json.dumps(json_safe(by_split), indent=2) + "\n")
    markdown = fidelity_markdown(by_split)
    (out / "fidelity.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / 'fidelity.json'} and {out / 'fidelity.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
