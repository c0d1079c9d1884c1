from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from datamodules.audio import load_audio
from datamodules.loading.cache import INT16_SCALE, build_cache
from tests.conftest import write_tone

SR = 16000


def _tone(path: Path, seconds: float, freq: float, sr: int = 22050, channels: int = 1) -> Path:
    """A decaying tone with harmonics, so every file holds different samples."""
    t = np.arange(int(seconds * sr)) / sr
    x = 0.4 * np.exp(-t) * (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 3 * freq * t))
    data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    sf.write(path, data.astype(np.float32), sr)
    return path


def _manifest(tmp_path: Path, n: int = 4) -> pd.DataFrame:
    """``n`` short clips: wav and mp3, 22.05/44.1 kHz (so they are resampled), mono and stereo."""
    rows = []
    for i in range(n):
        ext = "mp3" if i % 2 else "wav"
        sr = 44100 if i % 3 == 0 else 22050
        path = _tone(tmp_path / f"clip{i}.{ext}", 1.0 + 0.25 * i, 220.0 * (i + 1), sr, 1 + i % 2)
        rows.append({"track_id": f"t{i}", "audio_path": str(path)})
    return pd.DataFrame(rows)


def _all_clips(cache) -> dict[str, np.ndarray]:
    return {t: cache.read(t) for t in sorted(cache.offsets)}


def test_cached_crop_equals_decoded_crop_sample_for_sample(tmp_path: Path) -> None:
    df = _manifest(tmp_path)
    cache = build_cache(df, tmp_path / "cache", SR, progress=False)
    assert cache.built and len(cache) == len(df) and cache.skipped.empty
    for track_id, path in zip(df["track_id"], df["audio_path"], strict=True):
        decoded = load_audio(path, SR)
        assert cache.length(track_id) == len(decoded)
        offset, _ = cache.offsets[track_id]
        stored = np.asarray(cache.pcm[offset + 1000 : offset + 9000])
        expected = np.round(decoded[1000:9000] * INT16_SCALE).astype(np.int16)
        np.testing.assert_array_equal(stored, expected)  # exact, every sample
        np.testing.assert_array_equal(
            cache.read(track_id, 1000, 8000), expected.astype(np.float32) / INT16_SCALE
        )
        tail = cache.read(track_id, len(decoded) - 100, 8000)  # a crop past the end is shorter
        assert len(tail) == 100


def test_cache_pickles_without_its_memmap(tmp_path: Path) -> None:
    cache = build_cache(_manifest(tmp_path, 2), tmp_path / "cache", SR, progress=False)
    cache.read("t0")  # opens the memmap
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._pcm is None
    np.testing.assert_array_equal(clone.read("t1", 5, 50), cache.read("t1", 5, 50))


def test_cache_is_reused_and_rebuilt_only_on_change(tmp_path: Path) -> None:
    df = _manifest(tmp_path)
    cache_dir = tmp_path / "cache"
    first = build_cache(df, cache_dir, SR, progress=False)
    again = build_cache(df.iloc[::-1], cache_dir, SR, progress=False)  # row order does not matter
    assert first.built and not again.built and again.pcm_path == first.pcm_path

    path = Path(df.at[1, "audio_path"])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    touched = build_cache(df, cache_dir, SR, progress=False)
    assert touched.built and touched.pcm_path != first.pcm_path

    _tone(path, 2.5, 1000.0)  # rewritten with different audio
    modified = build_cache(df, cache_dir, SR, progress=False)
    assert modified.built and modified.length("t1") == len(load_audio(path, SR))
    assert modified.length("t1") != first.length("t1")
    np.testing.assert_array_equal(modified.read("t0"), first.read("t0"))

    resampled = build_cache(df, cache_dir, 8000, progress=False)
    assert resampled.built and resampled.sample_rate == 8000
    assert abs(resampled.length("t0") - modified.length("t0") // 2) <= 1

    capped = build_cache(df, cache_dir, SR, progress=False, max_seconds=0.5)
    assert capped.built and max(capped.length(t) for t in capped.offsets) == SR // 2

    fewer = build_cache(df.iloc[:2], cache_dir, SR, progress=False)
    assert fewer.built and sorted(fewer.offsets) == ["t0", "t1"]
    assert not build_cache(df, cache_dir, SR, progress=False).built  # the latest is still there


def test_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    df = _manifest(tmp_path, 2)
    cache = build_cache(df, tmp_path / "cache", SR, progress=False)
    with open(cache.pcm_path, "r+b") as f:
        f.truncate(1000)  # e.g. a disk that filled up after the index was written
    rebuilt = build_cache(df, tmp_path / "cache", SR, progress=False)
    assert rebuilt.built
    decoded = load_audio(df.at[1, "audio_path"], SR)
    np.testing.assert_array_equal(
        rebuilt.read("t1"), np.round(decoded * INT16_SCALE).astype(np.float32) / INT16_SCALE
    )


def test_bad_files_are_excluded_and_listed_never_fatal(tmp_path: Path) -> None:
    df = _manifest(tmp_path, 2)
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\xff\xfb" + b"not audio" * 100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050, dtype=np.float32), 22050)
    bad = {
        "NA": garbage,  # an id a CSV reader would turn into NaN
        "007": empty,
        "silent": silent,
        "missing": tmp_path / "missing.flac",
    }
    rows = [{"track_id": t, "audio_path": str(p)} for t, p in bad.items()]
    mixed = pd.concat([df, pd.DataFrame(rows)], ignore_index=True)
    cache = build_cache(mixed, tmp_path / "cache", SR, progress=False)
    assert sorted(cache.offsets) == ["t0", "t1"]
    skipped = cache.skipped.set_index("track_id")
    assert sorted(skipped.index) == sorted(bad)
    for track_id, path in bad.items():
        reason = skipped.at[track_id, "reason"]
        assert str(path) in reason and "\n" not in reason
        assert skipped.at[track_id, "audio_path"] == str(path)
    assert "silent" in skipped.at["silent", "reason"]
    assert "empty" in skipped.at["007", "reason"]
    reopened = build_cache(mixed, tmp_path / "cache", SR, progress=False)  # the list survives
    assert not reopened.built and sorted(reopened.skipped["track_id"]) == sorted(bad)


def test_a_manifest_of_only_bad_files_gives_an_empty_cache(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF0000WAVE")
    df = pd.DataFrame({"track_id": ["a"], "audio_path": [str(bad)]})
    cache = build_cache(df, tmp_path / "cache", SR, progress=False)
    assert len(cache) == 0 and cache.skipped["track_id"].tolist() == ["a"]
    assert len(cache.pcm) == 0


def _race(manifest: pd.DataFrame, cache_dir: str, barrier, results) -> None:
    import torch

    torch.set_num_threads(1)
    barrier.wait()  # both processes ask for the cache at the same moment
    cache = build_cache(manifest, cache_dir, SR, num_workers=1, progress=False)
    digest = {t: cache.read(t).tobytes() for t in sorted(cache.offsets)}
    results.put((os.getpid(), cache.built, str(cache.pcm_path), digest))


def test_two_processes_racing_build_the_cache_once(tmp_path: Path) -> None:
    df = _manifest(tmp_path, 6)
    write_tone(tmp_path / "long.wav", seconds=20.0)  # makes the build last long enough to overlap
    df.loc[len(df)] = {"track_id": "long", "audio_path": str(tmp_path / "long.wav")}
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(df, str(tmp_path / "cache"), barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(built for _, built, _, _ in outcome) == [False, True]  # built exactly once
    (_, _, pcm_a, data_a), (_, _, pcm_b, data_b) = outcome
    assert pcm_a == pcm_b and data_a == data_b and len(data_a) == len(df)
    assert list((tmp_path / "cache").glob("*.tmp*")) == []
    assert len(list((tmp_path / "cache").glob("*.pcm"))) == 1
