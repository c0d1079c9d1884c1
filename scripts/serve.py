"""The local tagging service and its page (FastAPI).

Thin entry point: the command lives in `lightning_module/commands/serve.py`
(also `audiotagger serve`).
"""

import sys

from lightning_module.commands.serve import main, parse_args  # noqa: F401 (parse_args: for tests)

if __name__ == "__main__":
    sys.exit(main())
