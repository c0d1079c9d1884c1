"""Write what the model says into the files' own tags: planned, verified, journaled, undoable.

The flow for every file (:func:`plan_file`, then :func:`apply_plan`):

1. **plan** (the dry run stops here): read the tags with mutagen and work out, field by field,
   what would change (old → new). Genre and mood go into the standard fields when the top label
   is at least ``min_probability``; ``bpm`` when the prediction has a ``tempo``; every feature the
   prediction holds, the model and the version into our own free-form fields
   (:data:`~.tag_fields.PREFIX`). A standard field the user set is kept unless ``overwrite``;
   our own earlier values (free-form fields, and standard fields the marker field records as
   written by us) are updated, or removed when the new prediction no longer gives them.
2. **apply**: copy the file beside itself (a hidden temp name, same folder), write the tags into
   the copy, re-read them with a fresh mutagen load and check that exactly the planned fields
   changed, decode the audio of both files and check it is bit-identical, give the copy the
   original's mode, owner and modification time, append the change to the journal (fsync'd),
   and rename the copy over the original (atomic). A file that changed since it was planned
   (size or mtime), read-only, hard-linked or without tag support is reported and left alone.
3. **undo** (:mod:`.undo`): the journal holds each field's exact old value; restoring puts
   every field back as it was before the first run the journal records (one composed write
   per file, through the same safe path), skipping any field changed since, and gives the file
   back its original bytes where the format allows (docs/tag_your_library.md, "Undo").

A kill at any moment leaves every file either original or fully tagged (the rename is the only
step that touches it) and at most a hidden temp file, removed on the next run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from datamodules.schema import FEATURE_UNITS
from lightning_module.console import write_line

# The safe write path, the journal and undo live in their own modules; these names stay
# importable from here (scripts, the benchmark and the tests use them).
from lightning_module.library.journal import (  # noqa: F401
    JOURNAL_VERSION,
    Journal,
    journal_files,
    read_journal,
)
from lightning_module.library.safe_write import (  # noqa: F401
    FieldChange,
    FilePlan,
    LeftAlone,
    Summary,
    apply_plan,
    audio_digest,
    format_plan,
    open_for_plan,
    reason_of,
    run_one,
    same_audio,
)
from lightning_module.library.tag_fields import (  # noqa: F401
    MARKER,
    STANDARD_FIELDS,
    TagError,
    TagFile,
    value_texts,
)
from lightning_module.library.undo import plan_undo, run_undo, undo_command  # noqa: F401

#: Default of ``--min-probability``: genre/mood go into the standard fields at this or above.
MIN_PROBABILITY = 0.5
#: Fields of ours that are not features (a feature of that name would be skipped).
RESERVED = frozenset({"model", "version", MARKER})
#: How genre labels are spelled in the genre field (others: title case).
GENRE_SPELLING = {"hiphop": "Hip-Hop", "rnb": "R&B", "edm": "EDM", "idm": "IDM"}


@dataclass(frozen=True)
class WriteOptions:
    """How to write. ``model``/``version`` are written to ``AUDIOTAGGER_MODEL``/``_VERSION``."""

    min_probability: float = MIN_PROBABILITY
    overwrite: bool = False
    touch: bool = False
    verify: str = "decode"  # how the audio is checked: "decode" (samples) or "packets"
    model: str = "unknown"
    version: str = "unknown"


# -- what to write ---------------------------------------------------------------------------
def feature_text(name: str, value: float) -> str:
    """A feature as written: 0-1 features to 3 decimals, BPM and dB to 1."""
    unit = FEATURE_UNITS.get(name)
    if unit is None:
        return f"{value:.4g}"
    return f"{value:.1f}" if unit else f"{value:.3f}"


def _label(name: str) -> str:
    return GENRE_SPELLING.get(name.lower(), name.replace("_", " ").title())


def _top(ranked: Any) -> tuple[str, float] | None:
    if not ranked:
        return None
    first = ranked[0]
    if isinstance(first, Mapping):
        return str(first["label"]), float(first["probability"])
    return str(first[0]), float(first[1])


def desired_fields(prediction: Mapping[str, Any], options: WriteOptions) -> dict[str, list[str]]:
    """Logical field → texts to write, from a prediction in :meth:`ClipPrediction.to_dict`
    form. Only what the prediction holds: no genre/mood below ``min_probability``, no BPM
    without a ``tempo``, no feature the model left out."""
    out: dict[str, list[str]] = {}
    for task in ("genre", "mood"):
        top = _top(prediction.get(task))
        if top is not None and top[1] >= options.min_probability:
            out[task] = [_label(top[0])]
    features = prediction.get("features") or {}
    tempo = features.get("tempo")
    if tempo is not None and math.isfinite(float(tempo)) and float(tempo) > 0:
        out["bpm"] = [str(int(round(float(tempo))))]
    for name, value in features.items():
        if name in RESERVED or name in STANDARD_FIELDS or value is None:
            continue
        if math.isfinite(float(value)):
            out[name] = [feature_text(name, float(value))]
    out["model"] = [options.model]
    out["version"] = [options.version]
    return out


def read_marker(tags: TagFile) -> dict[str, Any]:
    """Our marker field: ``{"fields": {logical: texts we wrote}, "min_probability": p}``."""
    texts = value_texts(tags.read(tags.key(MARKER)))
    try:
        marker = json.loads(texts[0]) if texts else {}
    except (ValueError, TypeError):
        return {}
    return marker if isinstance(marker, dict) else {}


def already_tagged(tags: TagFile, options: WriteOptions) -> bool:
    """True when this model, with these options, already wrote this file (no need to predict)."""
    if options.overwrite:
        return False
    marker = read_marker(tags)
    return (
        value_texts(tags.read(tags.key("model"))) == [options.model]
        and value_texts(tags.read(tags.key("version"))) == [options.version]
        and marker.get("min_probability") == options.min_probability
    )


# -- planning --------------------------------------------------------------------------------
def plan_file(
    shown: str | os.PathLike,
    prediction: Mapping[str, Any],
    options: WriteOptions,
    plan: FilePlan | None = None,
) -> FilePlan:
    """What writing ``prediction`` into ``shown`` would change (nothing is written).

    ``plan`` is an already opened :func:`open_for_plan` result to reuse.
    """
    plan = plan or open_for_plan(shown)
    if plan.skipped or plan.tags is None:
        return plan
    tags = plan.tags
    try:
        desired = desired_fields(prediction, options)
        marker = read_marker(tags)
        ours_before = marker.get("fields") if isinstance(marker.get("fields"), dict) else {}
        ours_after: dict[str, list[str]] = {}
        for logical in STANDARD_FIELDS:
            key = tags.key(logical)
            current_value = tags.read(key)
            current = value_texts(current_value)
            want = desired.get(logical)
            ours = bool(current) and ours_before.get(logical) == current
            if want is None:
                if ours:  # our earlier value, no longer predicted: take it back
                    plan.changes.append(FieldChange(key, current_value, None))
                continue
            if current == want:
                if ours:
                    ours_after[logical] = want
                continue
            if not current or ours or options.overwrite:
                plan.changes.append(FieldChange(key, current_value, tags.make(key, want)))
                ours_after[logical] = want
            else:
                plan.kept.append((key, current, want))
        marker_text = json.dumps(
            {"fields": ours_after, "min_probability": options.min_probability},
            sort_keys=True,
            separators=(",", ":"),
        )
        wanted = {tags.key(k): v for k, v in desired.items() if k not in STANDARD_FIELDS}
        wanted[tags.key(MARKER)] = [marker_text]
        wanted_upper = {k.upper() for k in wanted}
        for key in tags.own_keys():
            if key.upper() not in wanted_upper:  # a feature this model no longer gives
                plan.changes.append(FieldChange(key, tags.read(key), None))
        for key, texts in wanted.items():
            current_value = tags.read(key)
            if value_texts(current_value) != texts:
                plan.changes.append(FieldChange(key, current_value, tags.make(key, texts)))
    except TagError as err:
        plan.skipped, plan.changes, plan.kept = str(err), [], []
    return plan


# -- a whole library -------------------------------------------------------------------------
def run_library(
    items: Iterable[tuple[str, Mapping[str, Any] | Exception | None]],
    options: WriteOptions,
    apply: bool,
    journal: Journal | None,
    out: IO[str],
    total: int | None = None,
    progress: bool = True,
) -> Summary:
    """Plan (and with ``apply``, write) every ``(path, prediction)``; a prediction that is an
    exception (e.g. an :class:`AudioError`) skips its file; None means "already tagged by this
    model" (counted unchanged). Prints each file's changes above a progress bar."""
    from tqdm.auto import tqdm

    summary = Summary()
    bar = tqdm(items, total=total, unit="file", disable=not progress, leave=False)
    for shown, prediction in bar:
        if prediction is None:
            summary.unchanged += 1
            continue
        if isinstance(prediction, Exception):
            summary.skipped.append((str(shown), reason_of(prediction, shown)))
            write_line(f"skipped: {shown}: {reason_of(prediction, shown)}", out)
            continue
        plan = plan_file(shown, prediction, options)
        run_one(plan, apply, journal, options.touch, options.verify, summary, bar, out)
    return summary


# -- predictions from a results file ---------------------------------------------------------
def read_results(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """(audio path, prediction) from a ``predict_clip.py FOLDER --out`` file (``.jsonl`` or
    ``.csv``, read by :func:`~lightning_module.inference.formats.results.read_predictions`), the
    prediction in the form :func:`desired_fields` reads, unrounded. A relative audio path is
    taken from the current folder, or else from the results file's folder.

    Raises:
        ValueError: a malformed line or row (one line naming the file, line and field).
    """
    from lightning_module.inference.formats.results import read_predictions

    base = Path(path).resolve().parent

    def located(audio: str) -> str:
        p = Path(audio)
        if p.is_absolute() or p.exists() or not (base / p).exists():
            return str(p)
        return str(base / p)

    for prediction in read_predictions(path):
        yield located(str(prediction.path)), asdict(prediction)


def model_identity(path: str | os.PathLike) -> str:
    """``best.ckpt sha256:0123456789ab``: a model file's name and the start of its hash."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{Path(path).name} sha256:{h.hexdigest()[:12]}"


def package_version() -> str:
    """``audiotagger 0.1.0``: what ``AUDIOTAGGER_VERSION`` records."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"audiotagger {version('audiotagger')}"
    except PackageNotFoundError:
        return "audiotagger (not installed)"


# -- the command ---------------------------------------------------------------------------
def library_files(target: str | os.PathLike) -> list[str]:
    """The audio files of a folder (recursively, hidden ones skipped) or the one file named."""
    from lightning_module.inference.library import audio_files

    target = Path(target)
    if target.is_dir():
        return [str(p) for p in audio_files(target)]
    return [str(target)]


def predictions_from_model(
    tagger: Any, files: list[str], options: WriteOptions
) -> Iterator[tuple[str, Mapping[str, Any] | Exception | None]]:
    """(file, prediction) for every file, predicted with one model in shared batches; a file
    this model already tagged with these options gives None and is not predicted again (so a
    killed run resumes where it stopped)."""
    todo = []
    for path in files:
        plan = open_for_plan(path)
        if plan.tags is not None and not plan.skipped and already_tagged(plan.tags, options):
            yield path, None
        else:
            todo.append(path)
    for path, result in zip(todo, tagger.predict_files(todo), strict=True):
        yield path, result if isinstance(result, Exception) else result.to_dict()


def predictions_from_results(
    results: str | os.PathLike, target: str | os.PathLike | None
) -> tuple[list[tuple[str, Mapping[str, Any] | Exception | None]], int]:
    """(file, prediction) from a results file, limited to ``target`` (a folder or a file) when
    given; files of ``target`` the results do not cover are reported. Also returns the count."""
    rows = list(read_results(results))
    if target is None:
        return [(p, pred) for p, pred in rows], len(rows)
    wanted = {os.path.realpath(p): p for p in library_files(target)}
    items: list[tuple[str, Mapping[str, Any] | Exception | None]] = []
    seen = set()
    for path, prediction in rows:
        real = os.path.realpath(path)
        if real in wanted and real not in seen:
            seen.add(real)
            items.append((wanted[real], prediction))
    for real, shown in wanted.items():
        if real not in seen:
            items.append((shown, LookupError(f"no prediction in {results}")))
    return items, len(items)


def write_command(
    target: str | None,
    results: str | None,
    checkpoint: str | None,
    options: WriteOptions,
    apply: bool,
    journal_path: str,
    device: str = "cpu",
    progress: bool = True,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    allow_demo_model: bool = False,
) -> int:
    """``scripts/write_tags.py`` without the argument parsing: predict (one model load) or
    read ``results``, plan, and with ``apply`` write; prints the changes and a summary.
    Returns the exit status (0 ok, 1 some file failed, 2 nothing usable or refused).

    The model's notes (:func:`~lightning_module.inference.formats.text.model_notes`) come
    first on ``err``. A model trained only on the synthetic demo set would write tags that mean
    little into the user's files, so ``apply`` refuses it (before anything is written) unless
    ``allow_demo_model``."""
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    if results:
        items, total = predictions_from_results(results, target)
    else:
        from lightning_module.inference.formats.text import model_notes
        from lightning_module.inference.tagger import Tagger, default_model

        model_path = checkpoint or str(default_model())
        tagger = Tagger.from_file(model_path, device=device)
        for note in model_notes(tagger.spec):
            print(note, file=err)
        if apply and tagger.spec.synthetic_only and not allow_demo_model:
            print(
                f"error: {model_path}: trained only on the synthetic demo set, so nothing was "
                "written (a dry run shows its tags; --allow-demo-model writes them anyway)",
                file=err,
            )
            return 2
        if options.model == "unknown":
            options = WriteOptions(**{**options.__dict__, "model": model_identity(model_path)})
        files = library_files(target)
        items, total = predictions_from_model(tagger, files, options), len(files)
    with Journal(journal_path) as journal:
        summary = run_library(items, options, apply, journal, out, total, progress)
    print(summary.line(apply), file=err)
    if apply and summary.changed:
        print(
            f"journal: {journal_path}  (undo: scripts/write_tags.py --undo {journal_path})",
            file=err,
        )
    elif not apply and summary.changed:
        print("dry run: nothing was written; --apply writes these changes", file=err)
    if summary.failed:
        return 1
    return 0 if (summary.changed or summary.unchanged) else 2
