"""``features``: fill a manifest's empty audio-feature cells from offline teachers.

    python scripts/build_dataset.py features --manifest data/real/manifest.csv --out data/real_feat

Teachers, each optional and each recorded per value in ``provenance_<feature>``:

- ``tempo``: :func:`datamodules.analysis.tempo.estimate_tempo` (librosa, ISC), chosen on GTZAN's
  listener tempo (``teacher:librosa-tempo``);
- ``loudness``: BS.1770-4 integrated loudness of the clip (pyloudnorm, MIT; ``teacher:bs1770``);
- the seven perceptual features (danceability, energy, valence, acousticness, instrumentalness,
  speechiness, liveness) from **vibenet** (GPL-3.0, an optional extra: ``make vibenet``), run as a
  separate process through its command line, never imported (``teacher:vibenet``).

A value that came from a human label, a feature table or the synthetic generator
(``GROUND_TRUTH``) is never overwritten; the teacher's own value still goes to ``teacher_<feature>``
so evaluation can score the teacher against that ground truth. Values are cached per clip under
``DIR/feature_cache/<teacher version>/`` (key: file path, size, mtime): a re-run, or a run resumed
after a kill, computes nothing it already has. Rows whose audio cannot be analysed stay in the
manifest (their other labels still count) and are listed in ``DIR/skipped.csv`` with the reason.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from datamodules.analysis import loudness as loudness_teacher
from datamodules.analysis import tempo as tempo_teacher
from datamodules.analysis.vibenet import (
    VIBENET_FEATURES,
    VibenetError,
    run_vibenet,
    vibenet_executable,
)
from datamodules.audio import load_audio
from datamodules.builds import (
    MANIFEST_NAME,
    SKIPPED_NAME,
    SUMMARY_NAME,
    Skip,
    SourceError,
    from_mapping,
    write_skipped,
    write_summary,
)
from datamodules.manifest import (
    GROUND_TRUTH,
    TEACHER_PREFIX,
    ManifestError,
    feature_provenance,
    provenance_column,
    read_manifest,
    write_manifest,
)
from datamodules.teacher_pass import ClipCache, teacher_pass

SOURCE = "features"
CACHE_DIR = "feature_cache"
VIBENET_VERSION = "vibenet-0.1-cli-v1"
#: The provenance each teacher writes.
TEACHERS = {
    "tempo": "teacher:librosa-tempo",
    "loudness": "teacher:bs1770",
    "vibenet": "teacher:vibenet",
}
#: The analysers run on the decoded signal: name → (version, (wave, sample rate) → value).
SIGNAL_TEACHERS = {
    "tempo": (tempo_teacher.VERSION, tempo_teacher.estimate_tempo),
    "loudness": (loudness_teacher.VERSION, loudness_teacher.integrated_loudness),
}


@dataclass
class FeatureTeacherConfig:
    """Options of the ``features`` source (YAML keys or ``--set``).

    Attributes:
        manifest: the manifest to complete (its ``audio_path`` relative to its folder).
        tempo, loudness: run those analysers.
        vibenet: ``auto`` (run it when its command is installed), ``on`` (required) or ``off``.
        vibenet_command: the vibenet executable (default: ``vibenet`` beside this Python, else
            on ``PATH``).
        vibenet_batch: files per vibenet process (its start-up costs ~1.5 s).
        refresh_teacher_values: recompute cells an earlier teacher filled (default: keep them).
        name: value of the ``source`` column for rows that had none.
        progress: show tqdm progress bars.
    """

    manifest: str = ""
    tempo: bool = True
    loudness: bool = True
    vibenet: str | bool = "auto"
    vibenet_command: str = ""
    vibenet_batch: int = 64
    refresh_teacher_values: bool = False
    name: str = SOURCE
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.manifest:
            raise SourceError("manifest is required (--manifest M, or --set manifest=M)")
        if isinstance(self.vibenet, bool):  # YAML reads on/off as booleans
            self.vibenet = "on" if self.vibenet else "off"
        if self.vibenet not in ("auto", "on", "off"):
            raise SourceError(f"vibenet must be auto, on or off, not {self.vibenet!r}")
        if self.vibenet_batch < 1:
            raise SourceError(f"vibenet_batch must be >= 1, not {self.vibenet_batch}")


@dataclass
class FeatureTeacherSummary:
    """Counts of one run: per teacher computed/cached clips; per feature cells filled."""

    source: str
    out: str
    rows: int = 0
    teachers: list[str] = field(default_factory=list)
    computed: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        lines = [f"{self.source}: {self.out}/{MANIFEST_NAME}", f"  rows               {self.rows}"]
        for teacher in self.teachers:
            lines.append(
                f"  {teacher:<18} computed {self.computed.get(teacher, 0)}, "
                f"cached {self.cached.get(teacher, 0)}"
            )
        for feature in sorted(set(self.filled) | set(self.kept)):
            lines.append(
                f"  {feature:<18} filled {self.filled.get(feature, 0)}, "
                f"kept {self.kept.get(feature, 0)} (human/table/synthetic)"
            )
        lines.append(f"  skipped            {sum(self.skipped.values())}")
        lines += [f"    {reason:<24} {n}" for reason, n in sorted(self.skipped.items())]
        return "\n".join(lines)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _analyse_signal(
    paths: list[Path], config: FeatureTeacherConfig, out: Path, summary: FeatureTeacherSummary
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str, str]]]:
    """Tempo and loudness of every file (cached); returns values by path and (path, reason,
    detail) problems."""
    names = [name for name in SIGNAL_TEACHERS if getattr(config, name)]
    if not names:
        return {}, []
    caches = {
        name: ClipCache(out / CACHE_DIR / SIGNAL_TEACHERS[name][0], SIGNAL_TEACHERS[name][0])
        for name in names
    }

    def measure(name: str, wave: np.ndarray) -> dict[str, object]:
        try:
            return {"value": round(SIGNAL_TEACHERS[name][1](wave, tempo_teacher.SAMPLE_RATE), 4)}
        except ValueError as err:  # too short, silent: a reason, never -inf
            return {"value": None, "reason": str(err)}

    found = teacher_pass(
        [(str(path.resolve()), path) for path in paths],
        caches,
        decode=lambda path: load_audio(path, tempo_teacher.SAMPLE_RATE),
        compute=measure,
        desc=f"{SOURCE}: tempo/loudness",
        progress=config.progress,
    )
    summary.computed.update(found.computed)
    summary.cached.update(found.cached)
    problems = [(s.track_id, s.reason, s.detail) for s in found.skips]
    values: dict[str, dict[str, float]] = {}
    for key, records in found.values.items():
        values[key] = {}
        for name, record in records.items():
            if record.get("value") is not None:
                values[key][name] = float(record["value"])
            else:
                problems.append((key, f"no {name}", f"{key}: {record.get('reason', '')}"))
    return values, problems


def _analyse_vibenet(
    paths: list[Path], executable: str, config: FeatureTeacherConfig, out: Path, summary
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str, str]]]:
    cache = ClipCache(out / CACHE_DIR / VIBENET_VERSION, VIBENET_VERSION)
    values: dict[str, dict[str, float]] = {}
    problems: list[tuple[str, str, str]] = []
    todo: list[Path] = []
    for path in paths:
        cached = cache.get(path)
        if cached is None:
            todo.append(path)
            continue
        summary.cached["vibenet"] = summary.cached.get("vibenet", 0) + 1
        if cached.get("values"):
            values[str(path.resolve())] = dict(cached["values"])
        else:
            problems.append((str(path.resolve()), "no vibenet", str(cached.get("reason", ""))))
    bar = tqdm(total=len(todo), desc=f"{SOURCE}: vibenet", unit="clip", disable=not config.progress)
    for chunk in _chunks(todo, config.vibenet_batch):
        try:
            found = run_vibenet(executable, chunk)
        except VibenetError as err:
            raise SourceError(str(err)) from err
        for path in chunk:
            key = str(path.resolve())
            if key in found:
                values[key] = found[key]
                cache.put(path, {"values": found[key]})
            else:
                reason = f"{path}: vibenet could not read it"
                problems.append((key, "no vibenet", reason))
                cache.put(path, {"values": None, "reason": reason})
            summary.computed["vibenet"] = summary.computed.get("vibenet", 0) + 1
        bar.update(len(chunk))
    bar.close()
    return values, problems


def build(mapping: dict | None, out: str | os.PathLike) -> FeatureTeacherSummary:
    """Complete ``mapping["manifest"]`` with teacher features into ``out/manifest.csv``."""
    config: FeatureTeacherConfig = from_mapping(FeatureTeacherConfig, mapping, f"{SOURCE} config")
    out = Path(out)
    try:
        df = read_manifest(config.manifest, check_audio=False)
    except ManifestError as err:
        raise SourceError(str(err)) from err
    executable = None if config.vibenet == "off" else vibenet_executable(config.vibenet_command)
    if config.vibenet == "on" and executable is None:
        raise SourceError(
            "vibenet: command not found; install the optional GPL-3.0 teacher with `make vibenet` "
            "(or set vibenet: off)"
        )
    summary = FeatureTeacherSummary(source=config.name, out=str(out), rows=len(df))
    summary.teachers = [n for n in ("tempo", "loudness") if getattr(config, n)]
    summary.teachers += ["vibenet"] if executable else []
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in df["audio_path"]]
    readable = [p for p in paths if p.is_file()]
    problems = [(str(p), "bad audio", f"{p}: file not found") for p in paths if not p.is_file()]
    values, found = _analyse_signal(readable, config, out, summary)
    problems += found
    if executable:
        vibes, found = _analyse_vibenet(readable, executable, config, out, summary)
        problems += found
        for key, features in vibes.items():
            values.setdefault(key, {}).update(features)

    keys = [str(p.resolve()) if p.is_file() else str(p) for p in paths]
    for feature in sorted({f for v in values.values() for f in v}):
        teacher = TEACHERS["vibenet" if feature in VIBENET_FEATURES else feature]
        computed = pd.Series([values.get(k, {}).get(feature) for k in keys], index=df.index)
        computed = pd.to_numeric(computed, errors="coerce")
        provenance = (
            feature_provenance(df, feature)
            if feature in df
            else pd.Series(pd.NA, index=df.index, dtype="string")
        )
        protected = provenance.isin(GROUND_TRUTH).fillna(False)
        if not config.refresh_teacher_values:
            protected |= provenance.notna()  # an earlier teacher's value stays too
        fill = computed.notna() & ~protected
        if feature not in df:
            df[feature] = float("nan")
        df[provenance_column(feature)] = provenance
        df.loc[fill, feature] = computed[fill]
        df.loc[fill, provenance_column(feature)] = teacher
        df[f"{TEACHER_PREFIX}{feature}"] = computed
        summary.filled[feature] = int(fill.sum())
        summary.kept[feature] = int(provenance.isin(GROUND_TRUTH).fillna(False).sum())
    df["source"] = df["source"].fillna(config.name)
    ids = dict(zip(keys, df["track_id"], strict=True))
    skips = [Skip(str(ids.get(k, k)), reason, detail, k) for k, reason, detail in problems]
    write_skipped(out / SKIPPED_NAME, skips)
    write_manifest(df, out / MANIFEST_NAME)
    summary.skipped = dict(Counter(s.reason for s in skips))
    write_summary(out / SUMMARY_NAME, {**asdict(summary), "config": asdict(config)})
    return summary
