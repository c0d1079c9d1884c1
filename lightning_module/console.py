"""Lines for people reading a terminal while tqdm bars run (``skipped: <file>: <reason>``)."""

from __future__ import annotations

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
