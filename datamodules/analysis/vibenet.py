"""vibenet (GPL-3.0, PyPI ``vibenet``: an EfficientNet in ONNX inside its wheel, distilled from
Echo Nest labels) as a separate process: its command line is run, its JSON read. Our MIT code never
imports it; it is an optional extra (``make vibenet``), and it downloads nothing at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from datamodules.schema import FEATURES

#: The features vibenet predicts (its CLI's column names are ours): all but tempo and loudness.
VIBENET_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in ("tempo", "loudness"))


class VibenetError(RuntimeError):
    """vibenet could not be run, or printed something other than its JSON; one line."""


def vibenet_executable(command: str = "") -> str | None:
    """The vibenet command to run, or None when it is not installed."""
    if command:
        return shutil.which(command) or (command if Path(command).is_file() else None)
    beside = Path(sys.executable).parent / "vibenet"
    return str(beside) if beside.is_file() else shutil.which("vibenet")


def run_vibenet(executable: str, paths: Sequence[Path]) -> dict[str, dict[str, float]]:
    """vibenet's seven features for each readable file of ``paths`` (a separate process: GPL code
    never runs in ours). Files vibenet could not read are absent from the result.

    Raises:
        VibenetError: the command failed or printed something that is not its JSON.
    """
    # -q: the progress bar would go to stdout; -j 1: one worker (we batch the files ourselves).
    cmd = [executable, "-q", "-f", "json", "-j", "1", *map(str, paths)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VibenetError(f"vibenet: could not run {executable} ({err})") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise VibenetError(f"vibenet: exit code {done.returncode} ({last})")
    try:
        records = json.loads(done.stdout or "[]")
    except ValueError as err:
        raise VibenetError(f"vibenet: output is not JSON ({done.stdout[:80]!r})") from err
    result: dict[str, dict[str, float]] = {}
    for record in records:
        path = str(Path(record["path"]).resolve())
        result[path] = {k: float(record[k]) for k in VIBENET_FEATURES if k in record}
    return result
