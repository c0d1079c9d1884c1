"""More like this: index a library's embeddings, then find the songs that sound most alike.

python scripts/similar.py index ~/Music --out library.index      # embed new/changed files only
python scripts/similar.py query song.mp3 --index library.index --k 10 --m3u like_song.m3u8
python scripts/similar.py path calm.flac loud.mp3 --index library.index --count 12 --m3u walk.m3u8

A song of the index answers from its stored embedding (no model needed); any other file is
embedded with the model the index was made with. Distances are cosine distances (0: same
direction). See docs/tag_your_library.md.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before torch starts its OpenMP threads (see predict_clip.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.library.playlist import playlist_path  # noqa: E402
from lightning_module.library.similarity_commands import (  # noqa: E402
    index_command,
    path_command,
    query_command,
)

DEFAULT_INDEX = "library.index"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", help="embed a folder's songs into an index")
    index.add_argument("folder", help="the library folder (recursively)")
    index.add_argument("--out", default=DEFAULT_INDEX, help="index file (default: %(default)s)")
    index.add_argument(
        "--checkpoint", help="model (default: the shipped model (lightning_module/shipped/))"
    )
    index.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    query = commands.add_parser("query", help="the songs nearest one (or more) songs")
    query.add_argument("songs", nargs="+", help="audio file(s): in the index or not")
    query.add_argument("--index", default=DEFAULT_INDEX, help="index file (default: %(default)s)")
    query.add_argument("--k", type=int, default=10, help="how many songs (default: %(default)s)")
    query.add_argument(
        "--m3u",
        metavar="PLAYLIST",
        help="also write the song(s) and those found as this playlist: UTF-8 extended M3U, "
        ".m3u8 added to a name without suffix (a .m3u name is written as UTF-8 too, with a note)",
    )
    query.add_argument(
        "--no-seed", action="store_true", help="leave the song(s) asked about out of the playlist"
    )
    query.add_argument("--checkpoint", help="model for new songs (default: the index's)")
    query.add_argument(
        "--search", choices=("auto", "exact", "ann"), default="auto", help="(default: auto)"
    )
    query.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    path = commands.add_parser(
        "path", help="a playlist walking from one song of the index to another in small steps"
    )
    path.add_argument("start", help="the first song (a file of the index)")
    path.add_argument("end", help="the last song (a file of the index)")
    path.add_argument("--index", default=DEFAULT_INDEX, help="index file (default: %(default)s)")
    path.add_argument(
        "--count",
        type=int,
        default=25,
        help="songs in the playlist, both ends included "
        "(default: %(default)s; at most the index's songs)",
    )
    path.add_argument(
        "--m3u", metavar="PLAYLIST", help="also write the path as this playlist (as query --m3u)"
    )
    path.add_argument(
        "--search", choices=("auto", "exact", "ann"), default="auto", help="(default: auto)"
    )
    args = parser.parse_args(argv)
    if args.command == "path" and args.count < 2:
        parser.error(f"--count must be at least 2 (the two ends), not {args.count}")
    if args.command == "path" and args.m3u:
        try:
            args.m3u = str(playlist_path(args.m3u))
        except ValueError as err:
            parser.error(f"--m3u {err}")
    if args.command == "query" and args.k < 1:
        parser.error(f"--k must be at least 1, not {args.k}")
    if args.command == "query" and args.m3u:
        try:
            args.m3u = str(playlist_path(args.m3u))
        except ValueError as err:
            parser.error(f"--m3u {err}")
    if args.command == "query" and args.no_seed and not args.m3u:
        parser.error("--no-seed is for the playlist (--m3u)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "index":
            return index_command(
                args.folder, args.out, args.checkpoint, args.device, not args.no_progress
            )
        if args.command == "path":
            return path_command(args.start, args.end, args.index, args.count, args.m3u, args.search)
        return query_command(
            args.songs,
            args.index,
            args.k,
            args.m3u,
            args.checkpoint,
            args.search,
            args.device,
            seed=not args.no_seed,
        )
    except (OSError, ValueError) as err:  # AudioError, ModelError, LibraryIndexError
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
