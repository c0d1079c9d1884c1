"""The audio the benchmark measures on: generated songs, written the way users' files are.

Rendering a synthetic song is slow, so folders of many files are gain/shift/noise variations of a
few rendered songs (:func:`base_clips`, :func:`variation`). Files already written by an earlier
run are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from datamodules.io import atomic_path
from datamodules.synthetic import GENRES, MOODS, render_clip

#: Users' files: 44.1 kHz stereo.
SAMPLE_RATE = 44100


def base_clips(seconds: float, count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` rendered synthetic songs of ``seconds`` (mono float32 at :data:`SAMPLE_RATE`)."""
    rng = np.random.default_rng(seed)
    genres = sorted(GENRES)
    return [
        render_clip(genres[i % len(genres)], MOODS[i % len(MOODS)], seconds, SAMPLE_RATE, rng)[0]
        for i in range(count)
    ]


def variation(base: list[np.ndarray], index: int) -> np.ndarray:
    """(samples, 2) float32: song ``index`` of a folder, a gain, shift and noise of a base."""
    rng = np.random.default_rng(1000 + index)
    mono = np.roll(base[index % len(base)], int(rng.integers(0, SAMPLE_RATE * 5)))
    mono = mono * rng.uniform(0.4, 1.0) + 0.003 * rng.standard_normal(mono.size)
    stereo = np.stack([mono, np.roll(mono, 9)], axis=1)
    return np.clip(stereo, -1.0, 1.0).astype(np.float32)


def write_m4a(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """AAC in an MP4 container (iTunes' .m4a) with PyAV; soundfile cannot write it.

    Args:
        samples: (samples,) mono or (samples, channels) float32 in [-1, 1]; 1 or 2 channels.
    """
    import av

    planar = np.ascontiguousarray(np.atleast_2d(samples.T), dtype=np.float32)  # (channels, n)
    layout = "stereo" if planar.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=sample_rate, layout=layout)
        stream.bit_rate = 192_000
        for start in range(0, planar.shape[1], 1024):  # AAC's frame size
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + 1024]),
                format="fltp",
                layout=layout,
            )
            frame.sample_rate, frame.pts = sample_rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_songs(
    folder: Path, files: int, seconds: float, formats: Sequence[str] = ("mp3",)
) -> list[Path]:
    """``files`` songs of ``seconds`` in ``folder`` named ``song_0000.<format>``, cycling
    through ``formats`` (``mp3``, ``flac``, ``m4a``, ``wav`` ...); kept when already there."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song_{i:04d}.{formats[i % len(formats)]}" for i in range(files)]
    missing = [p for p in paths if not p.is_file() or p.stat().st_size == 0]
    base = base_clips(seconds) if missing else []
    for path in missing:
        stereo = variation(base, paths.index(path))
        with atomic_path(path) as tmp:
            if path.suffix == ".m4a":
                write_m4a(tmp, stereo)
            else:
                sf.write(tmp, stereo, SAMPLE_RATE, format=path.suffix[1:].upper())
    return paths


def write_long_file(path: Path, seconds: float) -> Path:
    """A ``seconds``-long 44.1 kHz stereo flac (a ripped CD), written a minute at a time."""
    if path.is_file() and abs(sf.info(str(path)).duration - seconds) < 1.0:
        return path
    base = base_clips(min(60.0, seconds), count=2)
    with atomic_path(path) as tmp, sf.SoundFile(tmp, "w", SAMPLE_RATE, 2, format="FLAC") as f:
        for minute in range(int(np.ceil(seconds / 60.0))):
            stereo = variation(base, minute)
            f.write(stereo[: int(round(min(60.0, seconds - 60.0 * minute) * SAMPLE_RATE))])
    return path


def write_long_clip(path: Path, seconds: float, seed: int = 0) -> Path:
    """A synthetic music-like mp3 of ``seconds`` at 44.1 kHz stereo, as users' files are."""
    samples, _ = render_clip("rock", "happy", seconds, SAMPLE_RATE, np.random.default_rng(seed))
    stereo = np.stack([samples, np.roll(samples, 7)], axis=1).astype(np.float32)
    sf.write(path, stereo, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")
    return path
