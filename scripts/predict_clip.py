"""Tag audio: a file, a folder (resumable), a timeline, a slice or a Spotify track.

Thin entry point: the command lives in `lightning_module/commands/tag.py`
(also `audiotagger tag`).
"""

import sys

from lightning_module.commands.tag import main, parse_args  # noqa: F401 (parse_args: for tests)

if __name__ == "__main__":
    sys.exit(main())
