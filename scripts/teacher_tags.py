"""Tag audio files with the frozen musicnn teacher (float32 input; a sanity check of the teacher).

    python scripts/teacher_tags.py ../shared/data/gtzan-samples/*.wav --top 3
    python scripts/teacher_tags.py song.mp3 --model MTT_musicnn

Prints one line per file: its top tags with the teacher's probability (3 s patches averaged).
A file that cannot be decoded prints ``error: <file>: <reason>``; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import sys

from datamodules.audio import AudioError, load_audio
from lightning_module.model.backbones.musicnn import MUSICNN_SAMPLE_RATE
from lightning_module.teacher.musicnn import MODELS, TeacherUnavailableError, load_teacher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", nargs="+", help="audio files (any format datamodules.audio reads)")
    parser.add_argument("--model", default="MSD_musicnn", choices=MODELS)
    parser.add_argument("--top", type=int, default=3, help="tags shown per file")
    args = parser.parse_args(argv)
    try:
        teacher = load_teacher(args.model)
    except TeacherUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    status = 0
    for path in args.audio:
        try:
            wave = load_audio(path, MUSICNN_SAMPLE_RATE, min_duration=1.0)
        except AudioError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
            continue
        tags = teacher.top_tags(wave, args.top)
        print(f"{path}  " + ", ".join(f"{name} {p:.2f}" for name, p in tags), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
