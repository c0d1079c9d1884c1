"""Ship a trained model (after `make refit`) as the package's default model.

python scripts/ship_model.py checkpoints/refit/tagger.ckpt --version 1.0.0
"""

import argparse
import sys

from lightning_module.inference.checkpoint import CheckpointError
from lightning_module.inference.export import ExportError
from lightning_module.inference.ship import ship_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="the checkpoint to ship (make refit's)")
    parser.add_argument("--id", default="audiotagger-student", help="model id")
    parser.add_argument("--version", required=True, help="model version, e.g. 1.0.0")
    parser.add_argument("--out", help="folder (default: lightning_module/shipped/)")
    args = parser.parse_args(argv)
    try:
        info, report = ship_model(args.checkpoint, args.id, args.version, args.out)
    except (CheckpointError, ExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"shipped {info['id']}@{info['version']}: {', '.join(info['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
