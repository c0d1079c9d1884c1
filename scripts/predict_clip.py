"""Tag an audio clip with a trained checkpoint: genre, mood and audio features.

python scripts/predict_clip.py song.mp3                      # newest best checkpoint
python scripts/predict_clip.py song.flac --checkpoint checkpoints/last.ckpt --json
"""

from __future__ import annotations

import argparse
import json
import sys

from datamodules.audio import AudioError
from lightning_module.inference import CheckpointError, Tagger, find_checkpoint, format_prediction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "audio", help="audio file (wav, flac, ogg, mp3, ...; any rate, any length >= 1 s)"
    )
    parser.add_argument(
        "--checkpoint", help="checkpoint path (default: newest best*.ckpt in checkpoints/)"
    )
    parser.add_argument("--json", action="store_true", help="print the prediction as JSON")
    parser.add_argument("--top", type=int, default=3, help="how many genres/moods/tags to show")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tagger = Tagger.from_checkpoint(args.checkpoint or find_checkpoint(), device=args.device)
        prediction = tagger.predict_file(args.audio)
    except (AudioError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        json.dumps(prediction.to_dict(args.top), indent=2)
        if args.json
        else format_prediction(prediction, args.top)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
