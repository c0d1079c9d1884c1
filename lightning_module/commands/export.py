"""Export a checkpoint to ONNX: waveform in (batch, samples) at the model's sample rate, every head
out (genre/mood logits, standardised features, tag logits when present, the embedding), the
log-mel frontend included. Batch and length are dynamic. onnxruntime is checked against PyTorch.

python scripts/export_onnx.py --checkpoint checkpoints/last.ckpt --out model.onnx
python scripts/predict_clip.py song.mp3 --onnx model.onnx
"""

from __future__ import annotations

import argparse
import sys

from lightning_module.inference.checkpoint import CheckpointError, load_network
from lightning_module.inference.export import ExportError, export_onnx
from lightning_module.inference.shipped import ShippedModelError, shipped_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="checkpoint path (default: the shipped model's checkpoint)"
    )
    parser.add_argument("--out", default="model.onnx", help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17 for STFT)")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the onnxruntime vs PyTorch check"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        net, spec = load_network(args.checkpoint or shipped_checkpoint())
    except (CheckpointError, ShippedModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report = export_onnx(net, spec, args.out, opset=args.opset, verify=not args.no_verify)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
