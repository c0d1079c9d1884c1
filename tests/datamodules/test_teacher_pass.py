"""The teachers' per-clip loop: cache first, decode once for what is missing, skip bad audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from datamodules.audio import load_audio
from datamodules.teacher_pass import ClipCache, teacher_pass


def test_cached_values_are_not_recomputed_and_bad_audio_is_one_line(tmp_path: Path) -> None:
    rate = 8000
    clips = []
    for i in range(3):
        path = tmp_path / f"tone{i}.wav"
        sf.write(path, 0.1 * np.sin(np.arange(rate) * (i + 1) / 10), rate)
        clips.append((f"tone{i}", path))
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    clips += [("broken", tmp_path / "broken.wav"), ("gone", tmp_path / "gone.wav")]
    caches = {name: ClipCache(tmp_path / "cache" / name, name) for name in ("peak", "mean")}
    decoded: list[Path] = []

    def decode(path: Path) -> np.ndarray:
        decoded.append(path)
        return load_audio(path, rate)

    def compute(name: str, wave: np.ndarray) -> dict:
        return {"value": float(np.abs(wave).max() if name == "peak" else wave.mean())}

    def run(names=("peak", "mean")):
        return teacher_pass(
            clips, {n: caches[n] for n in names}, decode, compute, "test", progress=False
        )

    first = run(("peak",))  # as if an earlier teacher version knew only the peak
    assert first.computed == {"peak": 3} and first.clips_computed == 3
    assert [(s.track_id, s.reason) for s in first.skips] == [
        ("broken", "bad audio"),
        ("gone", "bad audio"),
    ]
    assert all(s.item in s.detail and "\n" not in s.detail for s in first.skips)
    decoded.clear()
    second = run()
    assert (second.cached, second.computed) == ({"peak": 3}, {"mean": 3})
    assert decoded.count(tmp_path / "tone0.wav") == 1  # one decode for the missing value
    caches["mean"].path(tmp_path / "tone1.wav").write_bytes(b'{"val')  # torn by a kill
    decoded.clear()
    third = run()
    assert third.computed == {"mean": 1} and third.clips_cached == 2
    assert third.values["tone1"] == second.values["tone1"]
    assert list(third.values) == ["tone0", "tone1", "tone2"]
