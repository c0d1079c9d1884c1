"""Train the multi-task tagger. ``python scripts/train.py --help`` lists every option;
``configs/train.yaml`` is the default config (the embedded synthetic dataset).
Thin entry point: the command is ``lightning_module.training.cli.run`` (also ``audiotagger train``).
"""

import os
import sys

# Before torch starts its OpenMP threads: idle threads sleep instead of spinning, which on a
# machine shared with other work trains about twice as fast (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lightning_module.training.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run())
