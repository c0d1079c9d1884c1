"""Train the multi-task tagger. ``python scripts/train.py --help`` lists every option;
``configs/train.yaml`` is the default config (the embedded synthetic dataset)."""

import sys

from datamodules.audio import AudioError
from datamodules.manifest import ManifestError
from lightning_module.cli import main
from lightning_module.inference import CheckpointError

if __name__ == "__main__":
    try:
        main()
    except (ManifestError, AudioError, CheckpointError) as err:  # one line, no traceback
        sys.exit(f"error: {err}")
