"""'More like this': build a similarity index over a folder, query it, write playlists.

Thin entry point: the command lives in `lightning_module/commands/similar.py`
(also `audiotagger similar`).
"""

import sys

from lightning_module.commands.similar import main, parse_args  # noqa: F401 (parse_args: for tests)

if __name__ == "__main__":
    sys.exit(main())
