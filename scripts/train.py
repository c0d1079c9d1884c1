"""Train the multi-task tagger. ``python scripts/train.py --help`` lists every option;
``configs/train.yaml`` is the default config (the embedded synthetic dataset)."""

import os
import sys

# Before torch starts its OpenMP threads: idle threads sleep instead of spinning, which on a
# machine shared with other work trains about twice as fast (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from datamodules.audio import AudioError  # noqa: E402
from datamodules.manifest import ManifestError  # noqa: E402
from lightning_module.inference.tagger import CheckpointError  # noqa: E402
from lightning_module.training.cli import main  # noqa: E402

if __name__ == "__main__":
    try:
        main()
    except (ManifestError, AudioError, CheckpointError) as err:  # one line, no traceback
        sys.exit(f"error: {err}")
