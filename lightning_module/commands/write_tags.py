"""Write genre, mood, BPM, key, the genre tags and the audio features into the files' own tags
(dry run by default).

python scripts/write_tags.py ~/Music                          # show what would change, file by file
python scripts/write_tags.py ~/Music --apply                  # write it (every change journaled)
python scripts/write_tags.py ~/Music --fields bpm,key --apply # only some fields
python scripts/write_tags.py ~/Music --genre-mode append      # add ours after your genres
python scripts/write_tags.py --from-results tags.jsonl --apply    # from audiotagger tag --out
python scripts/write_tags.py --undo write_tags.journal.jsonl      # put the old tags back exactly

Genre and mood go into the standard fields (ID3 TCON/TMOO, Vorbis GENRE/MOOD, MP4 ©gen and
----:com.apple.iTunes:MOOD) when the model is at least --min-probability sure, the genre tags
above --genre-tag-threshold into GENRE (or STYLE, or grouping: --genre-tags); BPM as an integer
into TBPM/BPM/tmpo; the key into TKEY/INITIALKEY/----:com.apple.iTunes:initialkey (Am, C#, Ebm;
--key-notation camelot: 8A); the features (tempo exact), the tags, the model id and the version
into AUDIOTAGGER_* fields. A field you set is kept unless --overwrite (genres: --genre-mode).
Each file is written as a verified copy renamed over it (tags read back, audio decoded
bit-identical), keeping its mode and mtime unless --touch. See docs/tag_your_library.md.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before torch starts its OpenMP threads (see predict_clip.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.library.musical_key import NOTATIONS  # noqa: E402
from lightning_module.library.tag_values import (  # noqa: E402
    GENRE_MODES,
    GENRE_TAG_TARGETS,
    GENRE_TAG_THRESHOLD,
    SELECTABLE,
    TAG_THRESHOLD,
)
from lightning_module.library.write_tags import (  # noqa: E402
    MIN_PROBABILITY,
    WriteOptions,
    package_version,
    parse_fields,
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
    parser.add_argument(
        "--overwrite", action="store_true", help="replace genre/mood/BPM/key you set"
    )
    parser.add_argument(
        "--fields",
        help=f"write only these, comma-separated: {', '.join(SELECTABLE)} or a feature's name "
        "(default: all); every other field stays as it is",
    )
    parser.add_argument(
        "--genre-mode",
        choices=GENRE_MODES,
        help="genre/style/grouping you set: keep them (default), replace them (default with "
        "--overwrite) or append ours after them, each its own value",
    )
    parser.add_argument(
        "--genre-tags",
        choices=GENRE_TAG_TARGETS,
        default="genre",
        help="where the genre tags above --genre-tag-threshold go besides "
        "AUDIOTAGGER_GENRE_TAGS (default: %(default)s)",
    )
    parser.add_argument(
        "--genre-tag-threshold",
        type=float,
        default=GENRE_TAG_THRESHOLD,
        help="write the genre tags this probable or more (default: %(default)s)",
    )
    parser.add_argument(
        "--tag-threshold",
        type=float,
        default=TAG_THRESHOLD,
        help="write the tag head's tags (AUDIOTAGGER_TAGS) this probable or more "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--key-notation",
        choices=NOTATIONS,
        default="standard",
        help="the key field as Am/C#/Ebm (standard, as ID3 TKEY says) or 8A/3B (camelot)",
    )
    parser.add_argument(
        "--min-key-confidence",
        type=float,
        default=0.0,
        help="write the key field only when the model is this sure (default: %(default)s)",
    )
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
    parser.add_argument(
        "--model-name",
        help="what AUDIOTAGGER_MODEL records (default: the model's id, e.g. "
        "audiotagger-student@1.0.0; from results: their model_id or .state.json)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.undo and (args.target or args.apply):
        parser.error("--undo takes only the journal (and --dry-run)")
    if not args.undo and not args.target and not args.from_results:
        parser.error("name a file or folder to tag (or --from-results FILE, or --undo JOURNAL)")
    for name in ("min_probability", "genre_tag_threshold", "tag_threshold", "min_key_confidence"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1], not {value}")
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
            model=args.model_name or "unknown",  # unknown: the model's, or the results' id
            version=package_version(),
            fields=parse_fields(args.fields) if args.fields is not None else None,
            genre_mode=args.genre_mode,
            genre_tags_to=args.genre_tags,
            genre_tag_threshold=args.genre_tag_threshold,
            tag_threshold=args.tag_threshold,
            key_notation=args.key_notation,
            min_key_confidence=args.min_key_confidence,
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
