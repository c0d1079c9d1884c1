"""A procedural, music-like dataset whose labels are known by construction.

This is the embedded default, so ``make train`` works offline with no data of the user's own. Each
clip is rendered from a handful of parameters and every label is computed from those parameters (or
measured on the rendered signal), never guessed:

* **genre** sets the drum pattern, swing, instrument timbres, vocal/rap habits and a tempo range;
  the ranges overlap, so tempo alone never gives the genre away.
* **mood** is the valence/arousal quadrant (happy +/+, energetic -/+, sad -/-, calm +/-). Valence
  comes from the musical mode (major/minor) and brightness; arousal from gain and note density.
* **features** (Spotify definitions, natural units):
  tempo (BPM of the beat grid), loudness (dBFS RMS of the final mix), energy (loudness and onset
  density), valence (mode and brightness), danceability (drum presence, timing regularity, tempo
  near 120), acousticness (acoustic vs synthetic timbre share), instrumentalness (1 - vocal layer),
  speechiness (rap-like formant bursts), liveness (crowd noise and reverb).

Clips are written as real audio files (a mix of mp3 and wav, at 22.05 kHz so resampling is
exercised) plus a manifest, so they travel exactly the path real data travels.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from datamodules.io import atomic_path
from datamodules.manifest import FEATURES, write_manifest

log = logging.getLogger(__name__)

MOODS: tuple[str, ...] = ("happy", "energetic", "sad", "calm")
#: (valence sign, arousal sign) of each mood: the four quadrants of Russell's circumplex.
MOOD_QUADRANT: dict[str, tuple[int, int]] = {
    "happy": (1, 1),
    "energetic": (-1, 1),
    "sad": (-1, -1),
    "calm": (1, -1),
}

STEPS = 16  # sixteenth notes per bar
#: Bump when rendering changes, so cached datasets are regenerated.
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class GenreStyle:
    """How a genre sounds. Patterns are 16-step bars; levels are linear gains."""

    tempo: tuple[float, float]
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hat: tuple[int, ...]
    drums: float  # drum level
    swing: float  # delay of off-beat sixteenths, fraction of a step
    jitter: float  # random timing error, fraction of a step (regularity)
    lead: str  # lead timbre name, see _tone
    pad: str  # chord timbre
    bass: float  # bass level
    acoustic: float  # share of acoustic timbres, 0-1
    vocal_prob: float
    rap_prob: float
    distortion: float


GENRES: dict[str, GenreStyle] = {
    "electronic": GenreStyle(
        (115, 135),
        (0, 4, 8, 12),
        (4, 12),
        (2, 6, 10, 14),
        1.0,
        0.0,
        0.0,
        "saw",
        "saw",
        1.0,
        0.05,
        0.3,
        0.0,
        0.0,
    ),
    "rock": GenreStyle(
        (100, 150),
        (0, 8, 10),
        (4, 12),
        tuple(range(0, 16, 2)),
        0.9,
        0.0,
        0.05,
        "square",
        "square",
        0.8,
        0.35,
        0.6,
        0.0,
        0.6,
    ),
    "jazz": GenreStyle(
        (90, 160),
        (0, 10),
        (7, 15),
        (0, 4, 6, 8, 12, 14),
        0.45,
        0.33,
        0.12,
        "piano",
        "piano",
        0.7,
        0.9,
        0.2,
        0.0,
        0.0,
    ),
    "classical": GenreStyle(
        (60, 120), (), (), (), 0.0, 0.0, 0.2, "strings", "strings", 0.3, 1.0, 0.05, 0.0, 0.0
    ),
    "hiphop": GenreStyle(
        (80, 105),
        (0, 3, 10),
        (4, 12),
        tuple(range(0, 16, 2)),
        1.0,
        0.15,
        0.03,
        "sine",
        "piano",
        1.2,
        0.3,
        0.3,
        0.85,
        0.0,
    ),
    "folk": GenreStyle(
        (80, 125), (0, 8), (4, 12), (), 0.3, 0.05, 0.1, "pluck", "pluck", 0.4, 0.95, 0.6, 0.0, 0.0
    ),
}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


def _tone(
    kind: str, freq: float, n: int, sr: int, brightness: float, rng: np.random.Generator
) -> np.ndarray:
    """One note of ``n`` samples with timbre ``kind``; brightness in [0, 1] tilts the harmonics."""
    t = np.arange(n) / sr
    harmonics = np.arange(1, 13)
    harmonics = harmonics[harmonics * freq < sr / 2.2]
    tilt = 1.0 + 2.5 * (1.0 - brightness)  # darker = steeper roll-off
    if kind == "sine":
        amps = np.array([1.0] + [0.05] * (len(harmonics) - 1))
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * 3)
    elif kind == "saw":
        amps = 1.0 / harmonics ** (tilt * 0.6)
        env = np.minimum(1.0, t / 0.005) * np.exp(-t * 2)
    elif kind == "square":
        amps = np.where(harmonics % 2 == 1, 1.0 / harmonics ** (tilt * 0.5), 0.0)
        env = np.minimum(1.0, t / 0.005) * np.exp(-t * 1.5)
    elif kind == "piano":
        amps = 1.0 / harmonics ** (tilt * 0.9)
        env = np.minimum(1.0, t / 0.003) * np.exp(-t * 4.0)
    elif kind == "pluck":
        amps = 1.0 / harmonics ** (tilt * 0.7)
        # higher partials die faster, like a string
        env = np.minimum(1.0, t / 0.002) * np.exp(-t * 6.0)
    elif kind == "strings":
        amps = 1.0 / harmonics ** (tilt * 0.8)
        env = np.minimum(1.0, t / 0.15) * np.minimum(1.0, (t[-1] - t + 1e-3) / 0.1)
    else:
        raise ValueError(f"unknown timbre {kind!r}")
    vibrato = 1.0 + (0.004 * np.sin(2 * np.pi * 5.5 * t) if kind == "strings" else 0.0)
    phase = 2 * np.pi * freq * np.cumsum(np.broadcast_to(vibrato, t.shape)) / sr
    out = np.zeros(n)
    for h, a in zip(harmonics, amps, strict=True):
        if a > 1e-3:
            decay = np.exp(-t * (h - 1) * 1.5) if kind in ("pluck", "piano") else 1.0
            out += a * decay * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out * env / max(np.abs(amps).sum(), 1e-6)


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    if kind == "kick":
        freq = 50 + 90 * np.exp(-t * 30)
        return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * 12)
    noise = rng.standard_normal(n)
    if kind == "snare":
        return 0.6 * noise * np.exp(-t * 20) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 25)
    hat = np.diff(noise, prepend=0.0)  # crude high-pass
    return 0.5 * hat * np.exp(-t * 60)


def _formant_voice(
    n: int, sr: int, f0: float, rng: np.random.Generator, syllable_rate: float
) -> np.ndarray:
    """A voice-like layer: a glottal pulse train through two vowel formants, gated to syllables."""
    t = np.arange(n) / sr
    f0_curve = f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))
    phase = np.cumsum(f0_curve) / sr
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(float)
    spectrum = np.fft.rfft(pulses + 0.02 * rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    f1, f2 = rng.uniform(400, 800), rng.uniform(1000, 2200)
    shape = np.exp(-(((freqs - f1) / 120) ** 2)) + 0.7 * np.exp(-(((freqs - f2) / 180) ** 2))
    voiced = np.fft.irfft(spectrum * shape, n)
    gate = 0.5 * (1 + np.sign(np.sin(2 * np.pi * syllable_rate * t + rng.uniform(0, 6.28)) + 0.3))
    gate = np.convolve(gate, np.hanning(int(0.02 * sr)) / (0.01 * sr), mode="same")
    voiced *= gate
    return voiced / (np.abs(voiced).max() + 1e-9)


def _one_pole(x: np.ndarray, alpha: float) -> np.ndarray:
    """y[n] = y[n-1] + alpha·(x[n] - y[n-1]), a first-order low-pass (via scipy when available)."""
    from scipy.signal import lfilter

    return lfilter([alpha], [1.0, alpha - 1.0], x)


def _reverb(x: np.ndarray, sr: int, amount: float, rng: np.random.Generator) -> np.ndarray:
    if amount <= 0:
        return x
    n_ir = int(sr * (0.3 + 1.2 * amount))
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-t * 6 / (0.3 + 1.2 * amount))
    ir[0] = 1.0
    size = 1 << int(np.ceil(np.log2(len(x) + n_ir)))
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    wet *= np.std(x) / (np.std(wet) + 1e-9)
    return (1 - 0.6 * amount) * x + 0.6 * amount * wet


def render_clip(
    genre: str, mood: str, duration: float, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """Render one clip. Returns (samples float32 in [-1, 1], features in natural units)."""
    style = GENRES[genre]
    valence_sign, arousal_sign = MOOD_QUADRANT[mood]
    n = int(duration * sr)
    # Arousal pushes tempo to the upper or lower half of the genre's range.
    low, high = style.tempo
    mid = (low + high) / 2
    tempo = float(rng.uniform(mid, high) if arousal_sign > 0 else rng.uniform(low, mid))
    step = 60.0 / tempo / 4  # seconds per sixteenth
    major = valence_sign > 0
    scale = MAJOR if major else MINOR
    brightness = float(np.clip(rng.normal(0.78 if valence_sign > 0 else 0.22, 0.1), 0, 1))
    density = float(np.clip(rng.normal(0.75 if arousal_sign > 0 else 0.3, 0.1), 0.05, 1))
    gain_db = float(rng.normal(-9 if arousal_sign > 0 else -19, 2.0))
    root = 220.0 * 2 ** (rng.integers(-5, 7) / 12)
    has_vocal = rng.random() < style.vocal_prob
    has_rap = rng.random() < style.rap_prob
    crowd = float(rng.random() < 0.2) * rng.uniform(0.3, 1.0)
    reverb = float(np.clip(rng.normal(0.5 if genre == "classical" else 0.2, 0.15), 0, 1))

    def at(k: int) -> int:
        """Sample index of sixteenth ``k`` with swing and timing jitter."""
        swing = style.swing * step if k % 2 == 1 else 0.0
        return int((k * step + swing + rng.normal(0, style.jitter * step)) * sr)

    n_steps = int(duration / step)
    drums = np.zeros(n + sr)
    onsets = 0
    hits = {name: _drum(name, sr, rng) for name in ("kick", "snare", "hat")}
    for k in range(n_steps):
        for name, pattern, level in (
            ("kick", style.kick, 1.0),
            ("snare", style.snare, 0.7),
            ("hat", style.hat, 0.3),
        ):
            if k % STEPS in pattern:
                i = max(at(k), 0)
                drums[i : i + len(hits[name])] += level * hits[name][: len(drums) - i]
                onsets += 1
    drums = drums[:n]

    lead = np.zeros(n + 2 * sr)
    note_every = 1 if density > 0.6 else 2 if density > 0.35 else 4  # sixteenths between lead notes
    degree = 0
    for k in range(0, n_steps, note_every):
        if rng.random() > 0.35 + 0.6 * density:
            continue
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 10))
        octave, idx = divmod(degree, 7)
        freq = root * 2 ** (octave + scale[idx] / 12)
        length = int(
            step * note_every * sr * (1.6 if style.lead in ("strings", "pluck", "piano") else 0.9)
        )
        i = max(at(k), 0)
        lead[i : i + length] += _tone(style.lead, freq, length, sr, brightness, rng)
        onsets += 1
    lead = lead[:n]

    chords = np.zeros(n + 4 * sr)
    bass = np.zeros(n + 4 * sr)
    bar = int(STEPS * step * sr)
    progression = (0, 5, 3, 4) if major else (0, 5, 2, 4)
    for b, start in enumerate(range(0, n, bar)):
        chord_root = progression[b % 4]
        for third in (0, 2, 4):
            octave, idx = divmod(chord_root + third, 7)
            freq = root / 2 * 2 ** (octave + scale[idx] / 12)
            chords[start : start + bar] += 0.4 * _tone(style.pad, freq, bar, sr, brightness, rng)
        bass_freq = root / 4 * 2 ** (scale[chord_root % 7] / 12)
        for beat in range(4):
            i = start + beat * bar // 4
            bass[i : i + bar // 4] += _tone("sine", bass_freq, bar // 4, sr, 0.2, rng)
        onsets += 1
    chords, bass = chords[:n], bass[:n]

    # Brightness also shapes the whole tonal part (one-pole low-pass, 700 Hz dark to 7 kHz bright),
    # so valence is audible across timbres, not only in the harmonic tilt of each note.
    cutoff = 700.0 * 10**brightness
    alpha = 1.0 - np.exp(-2 * np.pi * cutoff / sr)
    lead, chords = (_one_pole(x, alpha) for x in (lead, chords))

    vocal = _formant_voice(n, sr, root / 1.5, rng, tempo / 60) if has_vocal else np.zeros(n)
    rap = _formant_voice(n, sr, 130.0, rng, tempo / 60 * 2) if has_rap else np.zeros(n)
    vocal_level = rng.uniform(0.35, 0.6) if has_vocal else 0.0
    rap_level = rng.uniform(0.5, 0.8) if has_rap else 0.0

    def unit(x: np.ndarray) -> np.ndarray:
        return x / (np.sqrt(np.mean(x**2)) + 1e-9)

    mix = (
        style.drums * 0.9 * unit(drums) * (drums.any())
        + 0.8 * unit(lead) * (lead.any())
        + 0.5 * unit(chords)
        + style.bass * 0.5 * unit(bass)
        + vocal_level * unit(vocal) * has_vocal
        + rap_level * unit(rap) * has_rap
    )
    if style.distortion:
        mix = np.tanh(mix * (1 + 4 * style.distortion)) / np.tanh(1 + 4 * style.distortion)
    mix = _reverb(mix, sr, reverb, rng)
    if crowd:
        noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * np.arange(n) / sr)
        mix = mix + crowd * 0.5 * unit(noise) * swell
    mix = mix / (np.sqrt(np.mean(mix**2)) + 1e-9) * 10 ** (gain_db / 20)
    peak = np.abs(mix).max()
    if peak > 0.99:  # keep it unclipped; loudness is measured after this
        mix *= 0.99 / peak
    samples = mix.astype(np.float32)

    loudness = float(20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) + 1e-12))
    onset_rate = onsets / duration
    energy = 0.55 * np.clip((loudness + 30) / 25, 0, 1) + 0.45 * np.clip(onset_rate / 14, 0, 1)
    timbre_acoustic = style.acoustic * (1 - style.distortion * 0.5)
    features = {
        "danceability": float(
            np.clip(
                0.2
                + 0.45 * style.drums * (1 - min(style.jitter / 0.2, 1)) * (1 - style.swing)
                + 0.25 * np.exp(-(((tempo - 120) / 25) ** 2))
                + 0.1 * (len(style.kick) > 0),
                0,
                1,
            )
        ),
        "energy": float(np.clip(energy, 0, 1)),
        "valence": float(np.clip(0.55 * major + 0.45 * brightness, 0, 1)),
        "acousticness": float(np.clip(timbre_acoustic * (0.85 + 0.15 * (1 - brightness)), 0, 1)),
        "instrumentalness": float(np.clip(1 - 1.4 * vocal_level - 1.2 * rap_level, 0, 1)),
        "speechiness": float(np.clip(0.04 + 0.8 * rap_level, 0, 1)),
        "liveness": float(np.clip(0.08 + 0.6 * crowd + 0.3 * reverb, 0, 1)),
        "tempo": tempo,
        "loudness": loudness,
    }
    return samples, features


def _render_job(job: tuple[str, str, int, Path, float, int]) -> dict[str, float]:
    """Render one clip to ``path`` (atomically; skipped if present) and return its features."""
    genre, mood, seed, path, duration, sample_rate = job
    rng = np.random.default_rng(seed)
    rng.random()  # the draw that chose the file format
    samples, features = render_clip(genre, mood, duration, sample_rate, rng)
    if not path.exists():
        ext = path.suffix[1:]
        with atomic_path(path, fsync=False) as tmp:  # regenerated if lost: no fsync needed
            sf.write(
                tmp,
                samples,
                sample_rate,
                format=ext.upper(),
                subtype="MPEG_LAYER_III" if ext == "mp3" else "PCM_16",
            )
    return features


def generate_synthetic(
    out_dir: str | os.PathLike,
    clips_per_class: int = 12,
    duration: float = 8.0,
    sample_rate: int = 22050,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
    mp3_fraction: float = 0.5,
) -> Path:
    """Render ``clips_per_class`` clips per (genre, mood) into ``out_dir`` and write its manifest.

    Reproducible from ``seed``. Returns the manifest path. Splits are stratified by (genre, mood).
    """
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = []
    n_val = max(1, round(clips_per_class * val_fraction))
    n_test = max(1, round(clips_per_class * test_fraction)) if test_fraction > 0 else 0
    for genre in GENRES:
        for mood in MOODS:
            for i in range(clips_per_class):
                split = "val" if i < n_val else "test" if i < n_val + n_test else "train"
                clip_seed = int(rng.integers(2**63))
                ext = "mp3" if np.random.default_rng(clip_seed).random() < mp3_fraction else "wav"
                jobs.append(
                    (
                        genre,
                        mood,
                        i,
                        split,
                        clip_seed,
                        audio_dir / f"syn-{genre}-{mood}-{i:03d}.{ext}",
                    )
                )
    # Rendering is numpy-bound Python; separate processes use both cores. "spawn" because the
    # caller may already run torch threads, which do not survive a fork.
    workers = min(os.cpu_count() or 1, 8)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rendered = pool.map(
            _render_job,
            [(j[0], j[1], j[4], j[5], duration, sample_rate) for j in jobs],
            chunksize=8,
        )
        rows = [
            {
                "track_id": path.stem,
                "audio_path": str(path),
                "split": split,
                "artist": f"synth-{genre}-{i % 5}",
                "genre": genre,
                "mood": mood,
                "source": "synthetic",
                **{name: features[name] for name in FEATURES},
            }
            for (genre, mood, i, split, _, path), features in zip(jobs, rendered, strict=True)
        ]
    manifest = write_manifest(pd.DataFrame(rows), out_dir / "manifest.csv")
    log.info("synthetic dataset: %d clips written to %s", len(rows), out_dir)
    return manifest


def ensure_synthetic(out_dir: str | os.PathLike, **kwargs) -> Path:
    """Return the synthetic manifest in ``out_dir``, generating it on first use."""
    manifest = Path(out_dir) / "manifest.csv"
    stamp = Path(out_dir) / ".params"
    params = f"v{GENERATOR_VERSION} {sorted(kwargs.items())!r}"
    if manifest.is_file() and stamp.is_file() and stamp.read_text() == params:
        return manifest
    if stamp.is_file() or manifest.is_file():  # settings changed: old clips no longer match
        shutil.rmtree(Path(out_dir) / "audio", ignore_errors=True)
    manifest = generate_synthetic(out_dir, **kwargs)
    stamp.write_text(params)
    return manifest
