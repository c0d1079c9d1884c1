"""Write the model's tags into audio files (dry run by default), or undo a run.

Thin entry point: the command lives in `lightning_module/commands/write_tags.py`
(also `audiotagger write-tags`).
"""

import sys

from lightning_module.commands.write_tags import main, parse_args  # noqa: F401 (parse_args: for tests)

if __name__ == "__main__":
    sys.exit(main())
