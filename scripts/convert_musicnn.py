"""Convert musicnn's pretrained TensorFlow checkpoint into PyTorch weights for --model.pretrained.

    python scripts/convert_musicnn.py --out checkpoints/msd_musicnn.pt            # MSD_musicnn
    python scripts/convert_musicnn.py --model MTT_musicnn --out checkpoints/mtt_musicnn.pt
    python scripts/convert_musicnn.py --model MSD_vgg --out checkpoints/msd_vgg.pt   # or MTT_vgg

Reads the checkpoint shipped inside the installed ``musicnn`` wheel (``make musicnn``); nothing is
downloaded. Then fine-tune: ``scripts/train.py --model.backbone musicnn --model.pretrained PATH``
(``--model.backbone musicnn_vgg`` for a ``*_vgg`` file).
"""

from __future__ import annotations

import argparse
import sys

from lightning_module.teacher.musicnn import MODELS, TeacherUnavailableError, save_converted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="MSD_musicnn", choices=MODELS)
    parser.add_argument("--out", required=True, help="where to write the .pt file")
    args = parser.parse_args(argv)
    try:
        path = save_converted(args.model, args.out)
    except (TeacherUnavailableError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.model} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
