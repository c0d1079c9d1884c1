"""Serve a trained model over HTTP on this machine: one model load, many clients.

python scripts/serve.py                                   # the default model, 127.0.0.1:8000
python scripts/serve.py --onnx model.onnx --port 8080
python scripts/serve.py --music-root ~/Music              # + POST /v1/tag-path below ~/Music
python scripts/serve.py --music-root ~/Music --index library.index   # + /v1/similar, /v1/path
AUDIOTAGGER_TOKEN=secret python scripts/serve.py          # every /v1 request needs the token

Then open http://127.0.0.1:8000/ to try it, or:
curl -F file=@song.mp3 http://127.0.0.1:8000/v1/tag       # the JSON predict_clip --json prints
See docs/service.md.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

# As in predict_clip.py: idle OpenMP threads sleep instead of spinning (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.inference.tagger import ModelError, default_model  # noqa: E402
from lightning_module.serving.app import run_server  # noqa: E402
from lightning_module.serving.limits import ServiceLimits  # noqa: E402
from lightning_module.serving.service import ServiceConfig  # noqa: E402

TOKEN_ENV = "AUDIOTAGGER_TOKEN"


def _number(kind: type, minimum: float, inclusive: bool) -> Callable[[str], int | float]:
    """An argparse ``type`` reading a finite ``kind`` above ``minimum`` (or at least it, when
    ``inclusive``): a batch size of 0 or a timeout of -1 is an argparse error, not a hang or a
    traceback later."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 0, inclusive=False)
positive_float = _number(float, 0.0, inclusive=False)
non_negative_float = _number(float, 0.0, inclusive=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    limits = ServiceLimits()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--checkpoint", help="default: the shipped model (lightning_module/shipped/)"
    )
    model.add_argument("--onnx", help="serve this model exported by scripts/export_onnx.py")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s (this machine)")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument("--music-root", type=Path, help="folder POST /v1/tag-path may read below")
    parser.add_argument(
        "--index",
        type=Path,
        help="library index (audiotagger similar index) for GET /v1/similar and /v1/path; "
        "needs --music-root",
    )
    parser.add_argument(
        "--token", help=f"bearer token required on /v1 (better: the {TOKEN_ENV} environment)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="windows per model call of a request"
    )
    parser.add_argument(
        "--overlap", type=float, default=0.5, help="window overlap, as predict_clip"
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=64, help="windows per shared forward pass"
    )
    parser.add_argument(
        "--max-wait-ms", type=non_negative_float, default=10.0, help="wait for company, ms"
    )
    parser.add_argument(
        "--max-upload-mb", type=positive_float, default=limits.max_upload_bytes / 1024**2
    )
    parser.add_argument(
        "--max-seconds", type=positive_float, default=limits.max_seconds, help="audio per request"
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=limits.request_timeout, help="per request, s"
    )
    parser.add_argument("--max-concurrent", type=positive_int, default=limits.max_concurrent)
    parser.add_argument(
        "--graceful-seconds", type=non_negative_float, default=30.0, help="SIGTERM: finish within"
    )
    parser.add_argument("--temp-dir", type=Path, help="uploads go here (default: system temp)")
    parser.add_argument("--allowed-host", action="append", help="Host header accepted (repeatable)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, not {args.port}")
    if not 0.0 <= args.overlap < 1.0:
        parser.error(f"--overlap must be in [0, 1), not {args.overlap}")
    if args.music_root is not None and not args.music_root.is_dir():
        parser.error(f"--music-root {args.music_root}: not a folder")
    if args.index is not None and args.music_root is None:
        parser.error("--index needs --music-root (the songs it serves lie below it)")
    return args  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        songs = None
        if args.index is not None:  # before the model loads: a bad index stops the start at once
            from lightning_module.library.song_index import SongIndex

            songs = SongIndex(args.index, args.music_root)
        config = ServiceConfig(
            model=Path(args.onnx or args.checkpoint or default_model()),
            device=args.device,
            batch_size=args.batch_size,
            overlap=args.overlap,
            max_batch=args.max_batch,
            max_wait=args.max_wait_ms / 1000,
            music_root=args.music_root,
            songs=songs,
            token=args.token or os.environ.get(TOKEN_ENV) or None,
            temp_dir=args.temp_dir,
            limits=ServiceLimits(
                max_upload_bytes=int(args.max_upload_mb * 1024**2),
                max_seconds=args.max_seconds,
                request_timeout=args.timeout,
                max_concurrent=args.max_concurrent,
            ),
        )
        return run_server(
            config,
            host=args.host,
            port=args.port,
            graceful_seconds=args.graceful_seconds,
            allowed_hosts=args.allowed_host,
            log_level=args.log_level,
        )
    except (ValueError, *ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
