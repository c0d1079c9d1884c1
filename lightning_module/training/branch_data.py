"""What the tempo and key branches are refitted on: labelled clips and the branches' inputs.

The two branches read the audio through fixed signal processing (onset autocorrelation of the
log-mel; chroma of a long-window spectrogram) followed by a small learned part. So their inputs
are computed once per window, for every speed change of the audio, and the learned parts are
fitted on those arrays in seconds (``training.branch_fit``), with the backbone untouched.

Labels: a tempo only where a person gave it (``provenance_tempo`` ``human``: GTZAN listener
annotations, GTZAN-Rhythm beat annotations), never a teacher's; a key from the ``key``/``mode``
columns. Several manifests merge by ``track_id``: the first one holding a track decides its
split (the training mix), later ones fill its empty columns and add tracks it lacks.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from datamodules.analysis.key import parse_key
from datamodules.audio import AudioError, load_audio
from datamodules.io import atomic_open
from datamodules.loading.augmentation import speed_change, speed_change_targets
from datamodules.manifest import provenance_column, read_manifest
from lightning_module.inference.streaming import planned_starts, tail_threshold
from lightning_module.model.key import KeyBranch
from lightning_module.model.network import TaggerNet
from lightning_module.model.spec import TaggerSpec

#: Speed changes of training clips, in semitones (tempo x 0.89 ... 1.12): every key and more
#: tempi get examples; val and test clips are used as they are.
TRAIN_SHIFTS: tuple[int, ...] = (-2, -1, 0, 1, 2)
#: Tempo provenance that counts as ground truth (a person tapped or annotated the beats).
TEMPO_TRUTH: tuple[str, ...] = ("human",)


@dataclass
class LabelledClip:
    """One clip with a tempo (BPM) and/or a key index (``None``: not labelled)."""

    track_id: str
    path: str
    split: str
    source: str
    tempo: float | None = None
    key: int | None = None


def merge_manifests(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The manifests merged by ``track_id`` (first split wins; later ones fill empty cells)."""
    merged: pd.DataFrame | None = None
    for path in paths:
        df = read_manifest(path, check_audio=False).set_index("track_id")
        if merged is None:
            merged = df
            continue
        new = df.index.difference(merged.index)
        merged = merged.combine_first(df.drop(columns=["split"], errors="ignore"))
        merged.loc[new, "split"] = df.loc[new, "split"]
    if merged is None:
        raise ValueError("no manifest given")
    return merged.reset_index()


def labelled_clips(df: pd.DataFrame) -> list[LabelledClip]:
    """Clips with a ground-truth tempo or key (see the module docstring).

    Raises:
        ValueError: a key cell that is not a key (names the track).
    """
    clips = []
    provenance = provenance_column("tempo")
    for row in df.to_dict("records"):
        tempo = row.get("tempo")
        truth = str(row.get(provenance, "")) in TEMPO_TRUTH
        tempo = float(tempo) if truth and tempo is not None and not pd.isna(tempo) else None
        key = None
        if isinstance(row.get("key"), str) and row["key"].strip():
            mode = row.get("mode")
            text = f"{row['key']} {mode}" if isinstance(mode, str) and mode.strip() else row["key"]
            try:
                key = parse_key(text)
            except ValueError as err:
                raise ValueError(f"{row['track_id']}: key: {err}") from err
        if tempo is not None or key is not None:
            clips.append(
                LabelledClip(
                    str(row["track_id"]),
                    str(row["audio_path"]),
                    str(row["split"]),
                    str(row.get("source", "")),
                    tempo,
                    key,
                )
            )
    return clips


@dataclass
class BranchInputs:
    """Per-window branch inputs with their clip's labels (after the speed change).

    Shapes: ``chroma`` (W, channels, 12); ``acf`` (W, groups, lags); ``clip`` (W,) index into
    ``clips``; ``tempo`` (W,) BPM or NaN; ``key`` (W,) index or -1; ``shift`` (W,) semitones.
    """

    chroma: np.ndarray
    acf: np.ndarray
    clip: np.ndarray
    tempo: np.ndarray
    key: np.ndarray
    shift: np.ndarray
    clips: list[LabelledClip] = field(default_factory=list)
    #: :func:`inputs_key` of what they were computed from ("" when unknown: never reused).
    cache_key: str = ""

    def rows(self, split: str, shift: int | None = None) -> np.ndarray:
        """Window indices of clips in ``split`` (and of one speed change)."""
        in_split = np.array([self.clips[c].split == split for c in self.clip])
        if shift is not None:
            in_split &= self.shift == shift
        return np.flatnonzero(in_split)


@torch.no_grad()
def window_inputs(
    net: TaggerNet, key: KeyBranch, spec: TaggerSpec, wave: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Chroma statistics and onset autocorrelation of the model windows of a (samples,) wave
    (the Tagger's windows, half-overlapping). Returns (W, channels, 12), (W, groups, lags)."""
    window = spec.window_samples
    hop = window // 2
    starts = planned_starts(wave.size, window, hop, None, tail_threshold(hop))
    windows = (
        torch.from_numpy(np.stack([wave[s : s + window] for s in starts]))
        if wave.size > window
        else torch.from_numpy(wave[None])
    )
    mel = net.frontend(windows)
    return key.chroma(windows).numpy(), net.tempo.onset_autocorrelation(mel).numpy()


def collect_inputs(
    net: TaggerNet,
    spec: TaggerSpec,
    clips: Iterable[LabelledClip],
    shifts: Sequence[int] = TRAIN_SHIFTS,
    progress: bool = True,
) -> BranchInputs:
    """Decode every clip, speed-change the training ones by ``shifts`` and compute the branch
    inputs of each window. A clip that does not decode is left out with a one-line warning."""
    key = KeyBranch(spec.sample_rate, n_fft=spec.key_n_fft, hidden=0).eval()
    net = net.eval()
    parts: dict[str, list] = {k: [] for k in ("chroma", "acf", "clip", "tempo", "key", "shift")}
    kept: list[LabelledClip] = []
    for clip in tqdm(list(clips), desc="branch inputs", unit="clip", disable=not progress):
        try:
            wave = load_audio(clip.path, spec.sample_rate, min_duration=1.0)
        except AudioError as err:
            tqdm.write(f"warning: {clip.track_id}: skipped ({err})")
            continue
        index = len(kept)
        kept.append(clip)
        for shift in shifts if clip.split == "train" else (0,):
            chroma, acf = window_inputs(net, key, spec, speed_change(wave, shift))
            tempo, key_index = speed_change_targets(shift, clip.tempo, clip.key)
            n = len(chroma)
            parts["chroma"].append(chroma)
            parts["acf"].append(acf)
            parts["clip"].append(np.full(n, index))
            parts["tempo"].append(np.full(n, np.nan if tempo is None else tempo))
            parts["key"].append(np.full(n, -1 if key_index is None else key_index))
            parts["shift"].append(np.full(n, shift))
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return BranchInputs(**arrays, clips=kept)


def inputs_key(
    net: TaggerNet, spec: TaggerSpec, clips: Sequence[LabelledClip], shifts: Sequence[int]
) -> str:
    """Digest of everything the inputs depend on: the front-end, window and branch settings,
    the speed changes and every clip (labels, split, audio file's size and modification time)."""

    def stat(path: str) -> list[int] | None:
        try:
            found = os.stat(path)
        except OSError:
            return None
        return [found.st_size, found.st_mtime_ns]

    record = {
        "sample_rate": spec.sample_rate,
        "logmel": spec.logmel.to_dict(),
        "window": spec.window_samples,
        "key_n_fft": spec.key_n_fft,
        "tempo": [net.tempo.groups, [int(lag) for lag in net.tempo.lags]],
        "shifts": list(shifts),
        "clips": [[*c.__dict__.values(), stat(c.path)] for c in clips],
    }
    return hashlib.sha256(json.dumps(record, default=str).encode()).hexdigest()


def save_inputs(inputs: BranchInputs, path: Path) -> None:
    """Keep the inputs (an ``.npz`` plus the clip table) so a refit skips the decoding."""
    arrays = {k: getattr(inputs, k) for k in ("chroma", "acf", "clip", "tempo", "key", "shift")}
    arrays["cache_key"] = np.array(inputs.cache_key)
    # The table first, the arrays (holding the key) last, each whole or not at all: a run killed
    # in between leaves a key that no longer matches, and the next run computes them again.
    with atomic_open(path.with_suffix(".csv"), "w", newline="") as f:
        pd.DataFrame([c.__dict__ for c in inputs.clips]).to_csv(f, index=False)
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_inputs(path: Path) -> BranchInputs | None:
    """The inverse of :func:`save_inputs`; None when the files are missing or unreadable."""
    try:
        arrays = dict(np.load(path))
        table = pd.read_csv(path.with_suffix(".csv"), keep_default_na=True)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    cache_key = str(arrays.pop("cache_key", ""))
    clips = [
        LabelledClip(
            str(r["track_id"]),
            str(r["path"]),
            str(r["split"]),
            str(r["source"]),
            None if pd.isna(r["tempo"]) else float(r["tempo"]),
            None if pd.isna(r["key"]) else int(r["key"]),
        )
        for r in table.to_dict("records")
    ]
    return BranchInputs(**arrays, clips=clips, cache_key=cache_key)
