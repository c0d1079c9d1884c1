"""Lines for people reading a terminal while tqdm bars run (``skipped: <file>: <reason>``)."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
from typing import IO


def write_line(text: str, file: IO[str]) -> None:
    """Print ``text`` as one line on ``file``, above any tqdm bar, in a single write + flush.

    A single write because native decoders print to the same stderr from the decoding threads
    (libmpg123 inside libsndfile warns about odd mp3 headers): ``tqdm.write`` writes the text and
    its newline separately, and such a warning landing between them glued itself onto our line.
    """
    from tqdm import tqdm

    with tqdm.external_write_mode(file=file):
        file.write(text + "\n")
        file.flush()


#: Lines that native decoders print straight onto file descriptor 2, bypassing Python: libmpg123
#: (inside libsndfile) reports every mp3 frame it had to patch up, some lines starting with
#: "error:", which read like our own one-line errors.
NATIVE_NOISE = re.compile(
    rb"^(\[src/libmpg123/|Note: Illegal Audio-MPEG-Header|Note: Trying to resync|"
    rb"Warning: Xing stream size off|Warning: Encountered more data after announced end|"
    rb"Warning: Big change|Note: Skipped \d+ bytes in input|\[.*mpg123.*\] )"
)
_quiet_installed = False


def quiet_native_decoders() -> None:
    """Drop native decoders' stderr lines (:data:`NATIVE_NOISE`) for the rest of the process.

    File descriptor 2 becomes a pipe whose reader thread forwards every other byte to the real
    stderr: complete lines unless they are noise, partial lines (tqdm's ``\\r`` updates) at once
    unless they start like noise. At exit the real stderr is restored and the pipe drained, so
    nothing we print is lost. Call once, from a command's entry point (never from the library:
    it changes the process). Does nothing where Python's stderr was replaced (pytest captures it).
    """
    global _quiet_installed
    if _quiet_installed or sys.stderr is not sys.__stderr__:  # already, or stderr is captured
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError):
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    _quiet_installed = True

    def forward() -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as source:
            while chunk := source.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line))
                if pending and not NATIVE_NOISE.match(pending) and not pending.startswith(b"["):
                    out, pending = out + pending, b""
                if out:
                    os.write(real, out)
            if pending and not NATIVE_NOISE.match(pending):
                os.write(real, pending)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the reader drains it and stops
        thread.join(timeout=2.0)

    atexit.register(restore)
