"""``musicnn``: label an existing manifest with the pretrained musicnn teacher's tag probabilities.

    python scripts/build_dataset.py musicnn --manifest data/mine/manifest.csv --out data/mine_tagged

Every row's audio is decoded through :mod:`datamodules.audio` (16 kHz mono), turned into musicnn's
float32 log-mel, cut into the teacher's own 3 s patches and run through its TensorFlow graph; the
patch probabilities are averaged over the whole clip and written as soft-target columns
``tag_<name>`` (``tag_rock``, ``tag_female_vocalists``, ...) of ``DIR/manifest.csv``, next to every
column the input had. An unlabelled folder (``folder`` source with ``keep_unlabelled: true``)
becomes training data this way.

Resumable: each clip's probabilities are cached in ``DIR/teacher_cache/<model>/`` under a key of
the audio file (absolute path, size, modification time) and the model, written atomically; a re-run
reuses them and does not even load TensorFlow when nothing is left to tag. Bad audio (missing,
corrupt, too short, silent) is left out of the new manifest and listed in ``DIR/skipped.csv`` with
its one-line reason. Needs the optional teacher: ``make musicnn``.

Optionally (``fill_labels: true``) the teacher also fills *empty* ``genre`` / ``mood`` cells through
the documented tag → label maps :data:`GENRE_FROM_TAGS` / :data:`MOOD_FROM_TAGS` (both overridable
in the config), so the existing heads can learn from the teacher too; labels already present are
never overwritten.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

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
from datamodules.manifest import TAG_PREFIX, ManifestError, read_manifest, write_manifest
from datamodules.teacher_pass import FileCache, teacher_pass

SOURCE = "musicnn"
CACHE_DIR = "teacher_cache"
#: Bump when the teacher's input or aggregation changes, so old cached probabilities are not reused.
PIPELINE_VERSION = "logmel-f32-v1"

#: MSD_musicnn tag → genre name, used by ``fill_labels`` (the MSD top-50 has no "classical").
GENRE_FROM_TAGS: dict[str, str] = {
    "rock": "rock",
    "classic_rock": "rock",
    "hard_rock": "rock",
    "alternative_rock": "rock",
    "indie_rock": "rock",
    "punk": "rock",
    "progressive_rock": "rock",
    "metal": "metal",
    "heavy_metal": "metal",
    "pop": "pop",
    "indie_pop": "pop",
    "electronic": "electronic",
    "electronica": "electronic",
    "electro": "electronic",
    "house": "electronic",
    "dance": "electronic",
    "jazz": "jazz",
    "blues": "blues",
    "country": "country",
    "folk": "folk",
    "hip_hop": "hiphop",
    "rnb": "rnb",
    "soul": "soul",
    "funk": "funk",
}
#: MSD_musicnn tag → our mood names (happy / sad / energetic / calm), used by ``fill_labels``.
MOOD_FROM_TAGS: dict[str, str] = {
    "happy": "happy",
    "party": "energetic",
    "sad": "sad",
    "mellow": "calm",
    "chill": "calm",
    "chillout": "calm",
    "easy_listening": "calm",
}


@dataclass
class MusicnnConfig:
    """Options of the musicnn source (YAML keys, or ``--set KEY=VALUE``).

    Attributes:
        manifest: the manifest to label (its audio paths are resolved against its folder).
        model: ``MSD_musicnn`` (50 Million Song Dataset tags) or ``MTT_musicnn`` (MagnaTagATune).
        batch_size: 3 s patches per TensorFlow run.
        threads: TensorFlow threads (default: PyTorch's thread count).
        min_duration: clips shorter than this many seconds are skipped.
        fill_labels: fill empty genre/mood cells from the teacher's tags (see the maps below).
        genre_map, mood_map: tag → label maps for ``fill_labels`` (default: the module's maps).
        min_probability: a mapped tag must reach this averaged probability to fill a label.
        name: value of the ``source`` column for rows that had none.
        progress: show a tqdm progress bar.
    """

    manifest: str = ""
    model: str = "MSD_musicnn"
    batch_size: int = 16
    threads: int | None = None
    min_duration: float = 1.0
    fill_labels: bool = False
    genre_map: dict[str, str] = field(default_factory=lambda: dict(GENRE_FROM_TAGS))
    mood_map: dict[str, str] = field(default_factory=lambda: dict(MOOD_FROM_TAGS))
    min_probability: float = 0.2
    name: str = SOURCE
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.manifest:
            raise SourceError("manifest is required (--manifest M, or --set manifest=M)")
        if self.model not in ("MSD_musicnn", "MTT_musicnn"):
            raise SourceError(f"model must be MSD_musicnn or MTT_musicnn, got {self.model!r}")


@dataclass
class TagLabellingSummary:
    """Counts of one labelling run. ``skipped`` maps reason → count."""

    source: str
    out: str
    model: str
    rows: int = 0
    tagged: int = 0
    computed: int = 0
    cached: int = 0
    filled: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"{self.source} ({self.model}): {self.out}/{MANIFEST_NAME}",
            f"  rows in            {self.rows}",
            f"  tagged             {self.tagged}  (computed {self.computed}, cached {self.cached})",
            f"  skipped            {sum(self.skipped.values())}",
        ]
        lines += [f"    {reason:<24} {n}" for reason, n in sorted(self.skipped.items())]
        lines += [f"  filled {column:<11} {n}" for column, n in sorted(self.filled.items())]
        return "\n".join(lines)


class TagCache(FileCache[np.ndarray]):
    """A clip's averaged tag probabilities, (tags,) float32 ``.npy`` files keyed on the audio file
    and the model (the key earlier runs cached under)."""

    suffix = ".npy"

    def __init__(self, folder: str | os.PathLike, model: str, n_tags: int) -> None:
        super().__init__(folder, model, PIPELINE_VERSION)
        self.n_tags = n_tags

    def prepare(self, value: np.ndarray) -> np.ndarray:
        return np.asarray(value, np.float32)

    def read(self, f: IO[bytes]) -> np.ndarray:
        return np.load(f)

    def write(self, f: IO[bytes], value: np.ndarray) -> None:
        np.save(f, value)  # a file object: np.save would append ".npy" to a name

    def valid(self, value: np.ndarray) -> bool:
        ok = value.shape == (self.n_tags,) and np.isfinite(value).all()
        return bool(ok and (value >= 0).all() and (value <= 1).all())


def _fill(
    df: pd.DataFrame, column: str, mapping: dict[str, str], names: list[str], threshold: float
) -> int:
    """Fill empty ``column`` cells with the label of the most probable mapped tag ≥ threshold."""
    mapped = [(tag, label) for tag, label in mapping.items() if tag in names]
    if not mapped:
        return 0
    probs = df[[f"{TAG_PREFIX}{tag}" for tag, _ in mapped]].to_numpy(np.float64)
    best = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= threshold
    empty = df[column].isna().to_numpy()
    rows = np.flatnonzero(empty & confident)
    for row in rows:
        df.iloc[row, df.columns.get_loc(column)] = mapped[best[row]][1]
    return len(rows)


def build(mapping: dict | None, out: str | os.PathLike) -> TagLabellingSummary:
    """Label ``mapping["manifest"]`` with the teacher into ``out/manifest.csv`` (see module doc)."""
    config: MusicnnConfig = from_mapping(MusicnnConfig, mapping, f"{SOURCE} config")
    out = Path(out)
    try:
        df = read_manifest(config.manifest, check_audio=False)
    except ManifestError as err:
        raise SourceError(str(err)) from err
    from lightning_module.model.backbones.musicnn import MUSICNN_SAMPLE_RATE
    from lightning_module.teacher.musicnn import TeacherUnavailableError, tag_names

    try:
        names = tag_names(config.model)  # needs the wheel, not TensorFlow
    except TeacherUnavailableError as err:
        raise SourceError(str(err)) from err
    summary = TagLabellingSummary(
        source=config.name, out=str(out), model=config.model, rows=len(df)
    )
    teacher = functools.cache(lambda: _teacher(config))  # TensorFlow only when there is work
    found = teacher_pass(
        zip(df["track_id"], df["audio_path"], strict=True),
        {"tags": TagCache(out / CACHE_DIR / config.model, config.model, len(names))},
        decode=lambda audio: load_audio(
            audio,
            MUSICNN_SAMPLE_RATE,
            min_duration=config.min_duration,
            allow_silence=False,
        ),
        compute=lambda _, wave: teacher().tag(wave),
        desc=f"{SOURCE}: tagging",
        progress=config.progress,
    )
    summary.computed, summary.cached = found.clips_computed, found.clips_cached
    skips = found.skips

    out.mkdir(parents=True, exist_ok=True)
    write_skipped(out / SKIPPED_NAME, skips)
    if not found.values:
        raise SourceError(f"{config.manifest}: no clip could be tagged (see {out / SKIPPED_NAME})")
    kept = df[df["track_id"].isin(found.values)].copy()
    probabilities = [found.values[track_id]["tags"] for track_id in kept["track_id"]]
    tags = pd.DataFrame(
        np.stack(probabilities).astype(np.float64).round(5),
        index=kept.index,
        columns=[f"{TAG_PREFIX}{name}" for name in names],
    )
    kept = pd.concat([kept.drop(columns=tags.columns, errors="ignore"), tags], axis=1)
    kept["source"] = kept["source"].fillna(config.name)
    if config.fill_labels:
        for column, label_map in (("genre", config.genre_map), ("mood", config.mood_map)):
            summary.filled[column] = _fill(kept, column, label_map, names, config.min_probability)
    write_manifest(kept.reset_index(drop=True), out / MANIFEST_NAME)
    summary.tagged = len(kept)
    summary.skipped = dict(Counter(s.reason for s in skips))
    write_summary(out / SUMMARY_NAME, {**asdict(summary), "config": asdict(config)})
    return summary


def _teacher(config: MusicnnConfig):  # -> MusicnnTeacher, imported lazily with TensorFlow
    from lightning_module.teacher.musicnn import TeacherUnavailableError, load_teacher

    try:
        teacher = load_teacher(config.model, config.threads)  # one graph per process
    except TeacherUnavailableError as err:
        raise SourceError(str(err)) from err
    teacher.batch_size = config.batch_size
    return teacher
