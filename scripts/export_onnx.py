"""Export a checkpoint to ONNX (frontend included), checked against PyTorch.

Thin entry point: the command lives in `lightning_module/commands/export.py`
(also `audiotagger export`).
"""

import sys

from lightning_module.commands.export import main, parse_args  # noqa: F401 (parse_args: for tests)

if __name__ == "__main__":
    sys.exit(main())
