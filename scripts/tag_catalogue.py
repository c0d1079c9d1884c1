"""Tag a catalogue (a folder, a list of paths, a Parquet/CSV table) on Ray Data, resumable.

Thin entry point: the command lives in `lightning_module/commands/catalogue.py`
(also `audiotagger catalogue`); the pipeline in `lightning_module/catalogue/`.
"""

import sys

from lightning_module.commands.catalogue import main, parse_args  # noqa: F401 (parse_args: tests)

if __name__ == "__main__":
    sys.exit(main())
