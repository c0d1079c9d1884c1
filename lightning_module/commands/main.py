"""``audiotagger``: one command with subcommands, the way music tools are used.

    audiotagger tag song.mp3                  # = python scripts/predict_clip.py song.mp3
    audiotagger tag ~/Music --out tags.csv
    audiotagger write-tags ~/Music --apply
    audiotagger similar index ~/Music --out music.npz
    audiotagger serve
    audiotagger export --checkpoint my.ckpt --out my.onnx     (needs the ``train`` extra)
    audiotagger train --config configs/train.yaml             (needs the ``train`` extra)

Each subcommand is the very ``main(argv)`` the matching script in ``scripts/`` calls; a
subcommand's module is imported only when it runs, so ``audiotagger tag`` never loads what
``serve`` or ``train`` need.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand → (``module[:function]`` taking argv (default ``main``), what it does, the extra it
#: needs beyond the core)
SUBCOMMANDS: dict[str, tuple[str, str, str | None]] = {
    "tag": ("lightning_module.commands.tag", "tag a file, a folder, a timeline or a slice", None),
    "write-tags": (
        "lightning_module.commands.write_tags",
        "write the model's tags into your files (dry run by default), or undo a run",
        "library",
    ),
    "similar": (
        "lightning_module.commands.similar",
        "'more like this': index a folder, query it, write playlists",
        "library",
    ),
    "catalogue": (
        "lightning_module.commands.catalogue",
        "tag millions of files on Ray (this machine or a cluster), resumable",
        "catalogue",
    ),
    "serve": ("lightning_module.commands.serve", "the local tagging service and page", "serve"),
    "export": ("lightning_module.commands.export", "export a checkpoint to ONNX", "train"),
    "train": ("lightning_module.training.cli:run", "train a model (LightningCLI)", "train"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text, _) in SUBCOMMANDS.items()]
    return (
        "usage: audiotagger <command> [options]   (audiotagger <command> --help for each)\n\n"
        "commands:\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``audiotagger <command> ...``; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    target, _, extra = SUBCOMMANDS[name]
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        hint = f" (pip install 'audiotagger[{extra}]')" if extra else ""
        print(f"error: audiotagger {name} needs {err.name or err}{hint}", file=sys.stderr)
        return 2
    sys.argv[0] = f"audiotagger {name}"  # argparse's prog in usage and errors
    return int(getattr(module, function or "main")(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
