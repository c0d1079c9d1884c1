"""Two processes (like two DDP ranks, or two runs) starting at the same instant on an empty data
folder: the synthetic dataset is generated once and the audio cache built once (FileLocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT

_RANK = """
import json, os, sys, time
from pathlib import Path
from datamodules.loading.datamodule import MusicDataModule
data_dir, go, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():  # imports done: wait for the common start
    time.sleep(0.01)
dm = MusicDataModule(None, data_dir=data_dir, synthetic_clips_per_class=3,
                     synthetic_duration=0.5, num_workers=0, decode_workers=1)
stat = dm.manifest_path.stat()
dm.setup("fit")
out.write_text(json.dumps({"manifest": str(dm.manifest_path), "inode": stat.st_ino,
                           "mtime": stat.st_mtime_ns, "pcm": str(dm.cache.pcm_path),
                           "pcm_inode": dm.cache.pcm_path.stat().st_ino,
                           "clips": len(dm.cache.offsets), "rows": len(dm.manifest)}))
"""


def test_two_processes_starting_together_generate_and_cache_once(tmp_path: Path) -> None:
    data_dir, go = tmp_path / "data", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK, str(data_dir), str(go), str(tmp_path / f"{rank}.json")],
            env=env,
            stderr=subprocess.PIPE,
        )
        for rank in (0, 1)
    ]
    time.sleep(1.0)  # let both finish importing, then release them together
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-3000:]
    first, second = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    # same manifest file, written once (a second generation would replace it: new inode)
    assert first["manifest"] == second["manifest"]
    assert (first["inode"], first["mtime"]) == (second["inode"], second["mtime"])
    assert first["rows"] == second["rows"] == 72  # 3 clips per (genre, mood)
    audio = list((data_dir / "synthetic" / "audio").rglob("*.*"))
    assert len(audio) == 72
    # one cache, built once, holding every clip
    assert first["pcm"] == second["pcm"] and first["pcm_inode"] == second["pcm_inode"]
    assert first["clips"] == second["clips"] == 72
    assert len(list((data_dir / "cache").glob("*.pcm"))) == 1
