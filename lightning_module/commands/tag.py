"""Tag audio with a trained model: genre, mood, audio features (and tags, genre tags).

python scripts/predict_clip.py song.mp3                          # the shipped model
python scripts/predict_clip.py song.flac --checkpoint checkpoints/last.ckpt --json
python scripts/predict_clip.py song.mp3 --offset 60 --duration 30   # tag a slice
python scripts/predict_clip.py song.mp3 --timeline --plot song.png  # window by window
python scripts/predict_clip.py ~/Music --out tags.csv               # a whole folder (resumable)
python scripts/predict_clip.py spotify:track:4uLU6hMCjMI75M1A2tKUQC # a Spotify preview
python scripts/predict_clip.py song.mp3 --onnx model.onnx           # the exported model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

# Before torch starts its OpenMP threads: idle threads sleep instead of spinning. On a busy machine
# spinning threads steal each other's cores and a 0.3 s prediction takes 2 s (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from datamodules.audio import AudioError  # noqa: E402
from datamodules.sources.spotify_preview import (  # noqa: E402
    SpotifyError,
    fetch_spotify_preview,
    spotify_track_id,
)
from lightning_module.console import quiet_native_decoders  # noqa: E402
from lightning_module.inference.folder_table import (
    LibraryError,  # noqa: E402
    tag_library,  # noqa: E402
)
from lightning_module.inference.formats.json_lines import prediction_dict  # noqa: E402
from lightning_module.inference.formats.text import (  # noqa: E402
    format_prediction,
    format_timeline,
    model_notes,
)
from lightning_module.inference.tagger import ModelError, Tagger, default_model  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "audio",
        help="audio file (wav, flac, ogg, mp3, ...; any rate, >= 1 s), a folder of them, "
        "or a Spotify track ID / URI / URL",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--checkpoint",
        help="run this checkpoint with PyTorch (needs the `torch` extra; default: the shipped "
        "model, lightning_module/shipped/model.onnx, with onnxruntime)",
    )
    model.add_argument("--onnx", help="run this model exported by scripts/export_onnx.py")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--top",
        type=int,
        default=3,
        help="how many genres/moods/tags/genre tags to show (--json lists every genre tag)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.5,
        help="fraction of a window shared with the next (0: half the windows, half the compute)",
    )
    parser.add_argument("--offset", type=float, default=0.0, help="start at this second")
    parser.add_argument("--duration", type=float, help="tag this many seconds (default: to end)")
    parser.add_argument(
        "--timeline", action="store_true", help="one line per window: genre, mood, energy, valence"
    )
    parser.add_argument("--plot", help="with --timeline: also save the timeline as this PNG")
    parser.add_argument(
        "--out", help="folder mode: write here (default: stdout); .jsonl for JSON lines"
    )
    parser.add_argument(
        "--format", choices=("csv", "jsonl"), help="folder mode output (default: from --out, csv)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="folder mode: decode in this many processes (default 0: two threads)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="folder mode: re-tag everything into --out even if another model, folder or "
        "settings wrote it (default: resume it, or refuse)",
    )
    args = parser.parse_args(argv)
    folder = Path(args.audio).is_dir()
    if not 0.0 <= args.overlap < 1.0:
        parser.error(f"--overlap must be in [0, 1), not {args.overlap}")
    if args.plot and not args.timeline:
        parser.error("--plot needs --timeline")
    if folder and args.timeline:
        parser.error("--timeline takes one audio file, not a folder")
    if not folder and (args.out or args.format or args.workers or args.force):
        parser.error("--out, --format, --workers and --force are for a folder")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, not {args.workers}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, not {args.batch_size}")
    if args.top < 1:
        parser.error(f"--top must be >= 1, not {args.top}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_native_decoders()
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, as command-line tools do. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace) -> int:
    try:
        model = args.onnx or args.checkpoint or default_model()
        tagger = Tagger.from_file(
            model,
            device=args.device,
            batch_size=args.batch_size,
            overlap=args.overlap,
        )
        if Path(args.audio).is_dir():
            code = _folder(tagger, args, model)
            _notes(tagger, code)
            return code
        with tempfile.TemporaryDirectory(prefix="audiotagger-") as tmp:
            audio = args.audio
            if not Path(audio).exists() and spotify_track_id(audio):
                audio = str(fetch_spotify_preview(audio, tmp))
            if args.timeline:
                windows = tagger.timeline(audio, args.offset, args.duration)
                if args.plot:
                    from lightning_module.plots import plot_timeline  # loads matplotlib

                    print(f"plot: {plot_timeline(windows, args.plot)}", file=sys.stderr)
                print(
                    json.dumps([prediction_dict(w, args.top) for w in windows], indent=2)
                    if args.json
                    else format_timeline(windows)
                )
            else:
                prediction = tagger.predict_file(audio, args.offset, args.duration)
                print(
                    json.dumps(prediction_dict(prediction, args.top), indent=2)
                    if args.json
                    else format_prediction(prediction, args.top)
                )
    except (AudioError, SpotifyError, LibraryError, *ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _notes(tagger, 0)
    return 0


def _notes(tagger: Tagger, code: int) -> None:
    """What a user should know about the answers, once per run, after them (stderr: stdout stays
    data); nothing when nothing was tagged, so an error stays one line."""
    if code == 0:
        for note in model_notes(tagger.spec):
            print(note, file=sys.stderr)


def _folder(tagger: Tagger, args: argparse.Namespace, model: str) -> int:
    jsonl = args.json or str(args.out or "").endswith((".jsonl", ".json"))
    fmt = args.format or ("jsonl" if jsonl else "csv")
    report = tag_library(
        tagger,
        args.audio,
        None if args.out else sys.stdout,
        fmt,
        args.top,
        args.offset,
        args.duration,
        errors=sys.stderr,
        out=args.out,
        model=model,
        force=args.force,
        workers=args.workers,
    )
    print(report.summary(args.out), file=sys.stderr)
    return 0 if report.tagged or report.kept else 2


if __name__ == "__main__":
    sys.exit(main())
