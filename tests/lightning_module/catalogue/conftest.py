"""Ray started once for every catalogue test that needs it, and a tiny generated catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: Generated clips of the tiny catalogue: (name, seconds, frequency Hz).
CLIPS = [(f"song{i:02d}.{ext}", 2.0 + 0.5 * (i % 3), 220.0 * (1 + i)) for i, ext in
         enumerate(["wav", "flac", "ogg", "wav", "flac", "wav", "ogg", "flac"])]  # fmt: skip


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A local Ray (2 CPUs, no dashboard) for the whole session; its GCS address, so that a
    second process can join it as a cluster's client would."""
    ray = pytest.importorskip("ray", reason="the catalogue extra (ray[data]) is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 short tones (wav, flac, ogg; 16-22 kHz), a corrupt mp3, a cover and an unknown file."""
    root = tmp_path_factory.mktemp("catalogue")
    rng = np.random.default_rng(3)
    for name, seconds, freq in CLIPS:
        sr = 22050 if name.endswith("wav") else 16000
        t = np.arange(int(seconds * sr)) / sr
        wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
        folder = root / ("disc2" if name.endswith("ogg") else "")
        folder.mkdir(exist_ok=True)
        sf.write(folder / name, wave.astype(np.float32), sr)
    (root / "broken.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "notes.xyz").write_text("not audio")
    return root
