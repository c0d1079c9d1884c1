"""Write genre, mood, BPM and the audio features into the files' own tags (dry run by default).

python scripts/write_tags.py ~/Music                          # show what would change, file by file
python scripts/write_tags.py ~/Music --apply                  # write it (every change journaled)
python scripts/write_tags.py --from-results tags.jsonl --apply    # from predict_clip.py --out
python scripts/write_tags.py --undo write_tags.journal.jsonl      # put the old tags back exactly

Genre and mood go into the standard fields (ID3 TCON/TMOO, Vorbis GENRE/MOOD, MP4 ©gen and
----:com.apple.iTunes:MOOD) when the model is at least --min-probability sure; BPM into
TBPM/BPM/tmpo; the features, the model and the version into AUDIOTAGGER_* fields. A field you
set is kept unless --overwrite. Each file is written as a verified copy renamed over it (tags
read back, audio decoded bit-identical), keeping its mode and mtime unless --touch. See
docs/tag_your_library.md.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before torch starts its OpenMP threads (see predict_clip.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.library.write_tags import (  # noqa: E402
    MIN_PROBABILITY,
    WriteOptions,
    package_version,
    undo_command,
    write_command,
)

DEFAULT_JOURNAL = "write_tags.journal.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", nargs="?", help="an audio file or a folder of them")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint", help="model (default: the shipped model (lightning_module/shipped/))"
    )
    source.add_argument(
        "--from-results",
        metavar="FILE",
        help="predictions from predict_clip.py --out (.jsonl/.csv)",
    )
    source.add_argument("--undo", metavar="JOURNAL", help="restore the tags a journal recorded")
    parser.add_argument("--apply", action="store_true", help="write (default: dry run)")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --undo: show what would be restored"
    )
    parser.add_argument(
        "--min-probability",
        type=float,
        default=MIN_PROBABILITY,
        help="write genre/mood only this sure or surer (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace genre/mood/BPM you set")
    parser.add_argument(
        "--allow-demo-model",
        action="store_true",
        help="let --apply write the tags of a model trained only on the synthetic demo set",
    )
    parser.add_argument("--touch", action="store_true", help="let the files' mtime change")
    parser.add_argument(
        "--verify",
        choices=("decode", "packets"),
        default="decode",
        help="check each written copy's audio by decoding both files (default) or by comparing "
        "their undecoded packets (3-4x faster, same guarantee for the bitstream)",
    )
    parser.add_argument(
        "--journal", default=DEFAULT_JOURNAL, help="append changes here (default: %(default)s)"
    )
    parser.add_argument("--model-name", help="what AUDIOTAGGER_MODEL records (default: the model)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.undo and (args.target or args.apply):
        parser.error("--undo takes only the journal (and --dry-run)")
    if not args.undo and not args.target and not args.from_results:
        parser.error("name a file or folder to tag (or --from-results FILE, or --undo JOURNAL)")
    if not 0.0 <= args.min_probability <= 1.0:
        parser.error(f"--min-probability must be in [0, 1], not {args.min_probability}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    try:
        if args.undo:
            return undo_command(
                args.undo, apply=not args.dry_run, progress=progress, verify=args.verify
            )
        options = WriteOptions(
            min_probability=args.min_probability,
            overwrite=args.overwrite,
            touch=args.touch,
            verify=args.verify,
            model=args.model_name or ("unknown (from results)" if args.from_results else "unknown"),
            version=package_version(),
        )
        return write_command(
            args.target,
            args.from_results,
            args.checkpoint,
            options,
            args.apply,
            args.journal,
            device=args.device,
            progress=progress,
            allow_demo_model=args.allow_demo_model,
        )
    except (OSError, ValueError) as err:  # AudioError, ModelError, malformed results/journal
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
