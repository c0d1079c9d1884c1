"""``teacher``: the accurate teacher's soft outputs for every window of every clip of a manifest.

    python scripts/build_dataset.py teacher --manifest data/real/features/manifest.csv \
        --set weights=checkpoints/msd_musicnn.pt --out data/real/teacher [--set refit=true]

1. Every clip (labelled or not) is decoded at 16 kHz and cut into 3 s windows (at most
   ``max_windows``, evenly spread); the features of each window by every frozen pretrained tagger
   in ``weights`` (``MSD_musicnn``, ``MTT_musicnn``, ...: ``--set weights=a.pt,b.pt``) are cached
   per clip in ``DIR/features/`` (key: audio file, weights digest, window cap), so a re-run, an
   interrupted run or a run with one more tagger computes nothing it has
   (:mod:`.window_features`).
2. The teacher's heads (genre, mood, AllMusic genre tags, audio features but tempo) are fitted on
   the train split, their embedding (each tagger alone, or all concatenated), unit and
   regularisation chosen on val (:mod:`.probe`);
   ``refit: true`` then fits the chosen heads again on train + val + test.
3. ``DIR/teacher_outputs.npz``: per window, the teacher's probabilities for each head, the first
   tagger's own 50 tag probabilities and the features in natural units, the student's
   distillation targets (``--data.teacher_outputs``); ``DIR/teacher.ckpt``: the teacher itself
   as a checkpoint (``predict_clip --checkpoint``, ``evaluate.py``); ``DIR/manifest.csv``: the
   rows that decoded; ``DIR/skipped.csv`` (bad audio, with the reason) and ``DIR/summary.json``
   (val score of every candidate, the choice, counts).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from datamodules.audio import load_audio
from datamodules.builds import (
    MANIFEST_NAME,
    SKIPPED_NAME,
    SUMMARY_NAME,
    SourceError,
    from_mapping,
    write_skipped,
    write_summary,
)
from datamodules.io import atomic_open
from datamodules.loading.teacher_targets import OUTPUTS_NAME, TeacherOutputs
from datamodules.manifest import ManifestError, write_manifest
from datamodules.teacher_pass import teacher_pass
from lightning_module.inference.device import DeviceError, resolve_device
from lightning_module.teacher.clip_descriptor import tag_head
from lightning_module.teacher.probe import (
    EMBEDDINGS,
    candidate_embeddings,
    fit_teacher,
    teacher_checkpoint,
)
from lightning_module.teacher.window_features import (
    SAMPLE_RATE,
    WINDOW_SECONDS,
    FeatureCache,
    FrozenMusicnn,
    extract,
    weights_digest,
)

SOURCE = "teacher"
CHECKPOINT_NAME = "teacher.ckpt"


@dataclass
class TeacherConfig:
    """Options of the ``teacher`` source (YAML keys, or ``--set KEY=VALUE``).

    Attributes:
        manifest: the manifest whose clips the teacher labels (every split, labelled or not).
        weights: the pretrained taggers converted by ``scripts/convert_musicnn.py`` (a list, or
            one string of comma-separated paths); the first one's tags are distilled.
        max_windows: at most this many 3 s windows per clip, evenly spread (bounds CPU time).
        embeddings: what of each tagger the heads may read, chosen on val (``musicnn``,
            ``musicnn_pooled``), of each tagger alone and of all of them concatenated.
        embedding: fix the embedding by its name (``MSD_musicnn+MTT_musicnn:musicnn_pooled``, as an
            earlier run's ``summary.json`` chose it) instead of choosing among every candidate:
            the refit teacher of ``make refit`` then fits one candidate, not all.
        per_head: each head reads the candidate embedding with its own best val score (genre
            from one tagger, features from the concatenation, ...); the teacher runs the union.
        refit: fit the chosen heads again on train + val + test (the shipped model's teacher).
        features_cache: folder of the cached window features (default ``DIR/features``; share
            one between the held-out and the refit teacher: the features do not depend on it).
        threads: PyTorch threads for the features (default: PyTorch's choice).
        device: where musicnn computes the features: ``auto`` (CUDA when present), ``cpu``,
            ``cuda`` or ``cuda:N``.
        min_duration: clips shorter than this many seconds are skipped.
        progress: show a tqdm progress bar.
    """

    manifest: str = ""
    weights: list[str] | str = field(default_factory=lambda: ["checkpoints/msd_musicnn.pt"])
    max_windows: int = 10
    embeddings: list[str] = field(default_factory=lambda: list(EMBEDDINGS))
    embedding: str | None = None
    per_head: bool = False
    refit: bool = False
    features_cache: str | None = None
    threads: int | None = None
    device: str = "auto"
    min_duration: float = 1.0
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.manifest:
            raise SourceError("manifest is required (--manifest M, or --set manifest=M)")
        if isinstance(self.weights, str):
            self.weights = [w.strip() for w in self.weights.split(",") if w.strip()]
        self.weights = [str(w) for w in self.weights or []]
        if not self.weights or len(set(self.weights)) < len(self.weights):
            raise SourceError(f"weights: one or more distinct files, got {self.weights}")
        if self.max_windows < 1:
            raise SourceError(f"max_windows must be >= 1, got {self.max_windows}")
        unknown = [e for e in self.embeddings if e not in EMBEDDINGS]
        if unknown or not self.embeddings:
            raise SourceError(f"embeddings must be among {', '.join(EMBEDDINGS)}, got {unknown}")
        try:
            self.device = str(resolve_device(self.device))
        except DeviceError as err:
            raise SourceError(str(err)) from None


@dataclass
class DistillTargetsSummary:
    """Counts and choices of one run."""

    source: str
    out: str
    rows: int = 0
    labelled: int = 0
    computed: int = 0
    cached: int = 0
    windows: int = 0
    embedding: str = ""
    head_embeddings: dict[str, str] = field(default_factory=dict)
    refit: bool = False
    choices: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"{self.source}: {self.out}/{OUTPUTS_NAME}, {self.out}/{CHECKPOINT_NAME}",
            f"  rows in            {self.rows}",
            f"  labelled by it     {self.labelled}  (computed {self.computed}, cached "
            f"{self.cached}; {self.windows} windows)",
            f"  skipped            {sum(self.skipped.values())}",
            *[f"    {reason:<24} {n}" for reason, n in sorted(self.skipped.items())],
            f"  embedding          {self.embedding}" + ("  (refit on every split)" * self.refit),
        ]
        lines += [
            f"  {c['head']:<18} {c['unit']} {c['strength']:g}: val {c['metric']} {c['score']:.3f}"
            + (
                f"  ({self.head_embeddings[c['head']]})"
                if c["head"] in self.head_embeddings
                else ""
            )
            for c in self.choices
        ]
        return "\n".join(lines)


def build(mapping: dict | None, out: str | os.PathLike) -> DistillTargetsSummary:
    """Label ``mapping["manifest"]`` with the teacher into ``out`` (see the module doc)."""
    from datamodules.loading.datamodule import MusicDataModule
    from lightning_module.model.backbones.musicnn import load_pretrained

    config: TeacherConfig = from_mapping(TeacherConfig, mapping, f"{SOURCE} config")
    out = Path(out)
    try:
        data = MusicDataModule(manifest=config.manifest)  # the student's task spec, no decoding
    except ManifestError as err:
        raise SourceError(str(err)) from err
    df, spec = data.manifest, data.task
    weights: dict[str, dict] = {}
    for path in config.weights:
        try:
            loaded = load_pretrained(path)
        except ValueError as err:
            raise SourceError(str(err)) from err
        model_name = str(loaded.get("model") or Path(path).stem)
        if model_name in weights:
            raise SourceError(f"{path}: a second file of {model_name} (weights: one per tagger)")
        weights[model_name] = loaded
    if config.threads:
        torch.set_num_threads(config.threads)
    folder = Path(config.features_cache) if config.features_cache else out / "features"
    caches = {
        name: FeatureCache(folder, weights_digest(path), config.max_windows)
        for name, path in zip(weights, config.weights, strict=True)
    }
    paths = dict(zip(weights, config.weights, strict=True))
    summary = DistillTargetsSummary(source=SOURCE, out=str(out), rows=len(df), refit=config.refit)
    # Each tagger is loaded only when a clip's features are not cached.
    model = functools.cache(lambda name: FrozenMusicnn(paths[name]).to(config.device))
    found = teacher_pass(
        zip(df["track_id"], df["audio_path"], strict=True),
        caches,
        decode=lambda audio: torch.from_numpy(
            load_audio(audio, SAMPLE_RATE, min_duration=config.min_duration, allow_silence=False)
        ),
        compute=lambda name, wave: extract(model(name), wave, config.max_windows),
        desc="teacher: features",
        progress=config.progress,
    )
    features, skips = found.values, found.skips
    summary.computed, summary.cached = found.clips_computed, found.clips_cached
    out.mkdir(parents=True, exist_ok=True)
    write_skipped(out / SKIPPED_NAME, skips)
    kept = df[df["track_id"].isin(features)].reset_index(drop=True)
    if kept.empty or not (kept["split"] == "train").any():
        raise SourceError(
            f"{config.manifest}: no train clip could be read (see {out / SKIPPED_NAME})"
        )
    candidates = candidate_embeddings(list(weights), config.embeddings)
    if config.embedding:
        named = [c for c in candidates if c.name == config.embedding]
        if not named:
            known = ", ".join(c.name for c in candidates)
            raise SourceError(f"embedding: {config.embedding!r} is not a candidate ({known})")
        candidates = named
    teacher, table = fit_teacher(kept, features, spec, candidates, config.refit, config.per_head)
    tag_model, tagger = next(iter(weights.items()))
    taggram = tag_head(tagger) if tagger.get("tag_names") else None
    outputs = _outputs(kept, features, teacher, taggram, spec, tagger, tag_model)
    outputs.save(out / OUTPUTS_NAME)
    summary.labelled = len(kept)
    summary.windows = int(outputs.offset[-1])
    summary.embedding = teacher.embedding.name
    if config.per_head:
        summary.head_embeddings = {h: e.name for h, e in teacher.head_embeddings.items()}
    summary.choices = [asdict(c) | {"scores": None} for c in teacher.choices]
    summary.skipped = dict(Counter(s.reason for s in skips))
    record = {**asdict(summary), "candidates": table, "config": asdict(config)}
    checkpoint = teacher_checkpoint(teacher, spec, weights, record)
    with atomic_open(out / CHECKPOINT_NAME, "wb") as f:
        torch.save(checkpoint, f)
    write_manifest(kept, out / MANIFEST_NAME)
    write_summary(out / SUMMARY_NAME, record)
    return summary


def _outputs(
    df: pd.DataFrame, features: dict, teacher, taggram, spec, weights: dict, tag_model: str
) -> TeacherOutputs:
    from lightning_module.model.backbones.musicnn import tag_slug

    per_clip = [teacher.window_outputs(features[t], taggram, tag_model) for t in df["track_id"]]
    heads = {k: np.concatenate([c[k] for c in per_clip]) for k in per_clip[0]}
    if "features" in heads:  # z-scores of the teacher's spec → natural units
        index = [spec.feature_names.index(f) for f in teacher.names["features"]]
        mean = np.asarray(spec.feature_mean, np.float32)[index]
        std = np.asarray(spec.feature_std, np.float32)[index]
        heads["features"] = heads["features"] * std + mean
    names = dict(teacher.names)
    if taggram is not None:
        names["tags"] = [tag_slug(t) for t in weights["tag_names"]]
    counts = [len(features[t][tag_model].starts) for t in df["track_id"]]
    return TeacherOutputs(
        track_ids=df["track_id"].astype(str).tolist(),
        offset=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        start=np.concatenate([features[t][tag_model].starts for t in df["track_id"]]).astype(
            np.float32
        ),
        window_seconds=WINDOW_SECONDS,
        heads=heads,
        names=names,
    )
