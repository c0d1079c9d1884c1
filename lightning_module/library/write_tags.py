"""Write what the model says into the files' own tags: planned, verified, journaled, undoable.

The flow for every file (:func:`plan_file`, then :func:`apply_plan`):

1. **plan** (the dry run stops here): read the tags with mutagen and work out, field by field,
   what would change (old → new), for the fields ``--fields`` selects (all by default; any
   other field stays exactly as it is). What each field gets is :mod:`.tag_values`' job:
   genre and mood when the top label is at least ``min_probability``, the genre tags above
   their threshold (into ``GENRE``, ``STYLE`` or grouping, several values), BPM as an integer,
   the key in the notation players read; the features (tempo exact), the tags, the model and
   the version into our own free-form fields (:data:`~.tag_fields.PREFIX`). A standard field
   the user set is kept unless ``overwrite``; the multi-value ones follow ``genre_mode``
   (``append`` adds ours after the user's values, each its own value). Our own earlier values
   (free-form fields, and standard fields the marker field records as ours) are updated, or
   removed when the new prediction no longer gives them. The marker also names the model of
   each field of ours, so a run over some fields keeps the others' provenance.
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
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

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
from lightning_module.library.standard_fields import plan_standard
from lightning_module.library.tag_fields import (  # noqa: F401
    MARKER,
    STANDARD_FIELDS,
    V23_JOIN,
    TagError,
    TagFile,
    value_texts,
)
from lightning_module.library.tag_sources import (  # noqa: F401
    model_id_of,
    model_identity,
    read_results,
    results_model_id,
)
from lightning_module.library.tag_values import (  # noqa: F401
    GENRE_SPELLING,
    MIN_PROBABILITY,
    RESERVED,
    WriteOptions,
    desired_fields,
    feature_text,
    parse_fields,
)
from lightning_module.library.undo import plan_undo, run_undo, undo_command  # noqa: F401


# -- what we wrote ---------------------------------------------------------------------------
def read_marker(tags: TagFile) -> dict[str, Any]:
    """Our marker field: ``{"fields": {standard field: our texts in it}, "models": {model id:
    [the fields of ours it wrote]}, "run": the signature of the run that wrote it}`` (older
    files: ``fields`` and ``min_probability`` only)."""
    texts = value_texts(tags.read(tags.key(MARKER)))
    try:
        marker = json.loads(texts[0]) if texts else {}
    except (ValueError, TypeError):
        return {}
    return marker if isinstance(marker, dict) else {}


def run_signature(options: WriteOptions) -> str:
    """What the marker records of a run (a digest of :meth:`WriteOptions.signature`): a later
    run with the same signature would change nothing, so it need not even predict."""
    text = json.dumps(options.signature(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def marker_models(marker: Mapping[str, Any]) -> dict[str, str]:
    """Logical field → the id of the model that wrote it, from the marker's ``models`` (model
    id → its fields)."""
    out: dict[str, str] = {}
    for model, fields in _dict(marker.get("models")).items():
        for logical in fields if isinstance(fields, list) else []:
            out[str(logical)] = str(model)
    return out


def already_tagged(tags: TagFile, options: WriteOptions) -> bool:
    """True when this model, with these options, already wrote this file (no need to predict)."""
    if options.overwrite:
        return False
    return read_marker(tags).get("run") == run_signature(options)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- planning --------------------------------------------------------------------------------
def plan_file(
    shown: str | os.PathLike,
    prediction: Mapping[str, Any],
    options: WriteOptions,
    plan: FilePlan | None = None,
) -> FilePlan:
    """What writing ``prediction`` into ``shown`` would change (nothing is written).

    ``plan`` is an already opened :func:`open_for_plan` result to reuse. Only the fields in
    ``options.scope()`` are planned; every other field stays exactly as it is, and the marker
    keeps what it said of them.
    """
    plan = plan or open_for_plan(shown)
    if plan.skipped or plan.tags is None:
        return plan
    tags = plan.tags
    scope = options.scope()

    def in_scope(logical: str) -> bool:
        return scope is None or logical in scope

    try:
        desired = desired_fields(prediction, options)
        marker = read_marker(tags)
        ours_before = _dict(marker.get("fields"))
        models_before = marker_models(marker)
        ours_after = {k: v for k, v in ours_before.items() if not in_scope(k)}
        for logical in STANDARD_FIELDS:
            if in_scope(logical):
                plan_standard(plan, logical, desired.get(logical), options, ours_before, ours_after)
        wanted_own = {k: v for k, v in desired.items() if k not in STANDARD_FIELDS and in_scope(k)}
        # Provenance: the model of every field of ours (this run's, or an earlier run's for a
        # field outside --fields); AUDIOTAGGER_MODEL lists each model once, this run's first.
        models = {k: m for k, m in models_before.items() if not in_scope(k)}
        models.update({k: options.model for k in [*ours_after, *wanted_own] if in_scope(k)})
        kept_own = [
            tags.logical_of(k)
            for k in tags.own_keys()
            if tags.logical_of(k) not in RESERVED and not in_scope(tags.logical_of(k))
        ]
        ours_all = {*ours_after, *wanted_own, *kept_own}
        models = {k: m for k, m in models.items() if k in ours_all}
        # fields of ours from before the marker named models: the model field said which
        unnamed = [k for k in ours_all if k not in models]
        earlier = value_texts(tags.read(tags.key("model"))) if unnamed else []
        first = sorted(models.values(), key=lambda m: m != options.model)
        model_texts = list(dict.fromkeys([*first, *earlier]))
        by_model: dict[str, list[str]] = {}
        for logical in sorted(models):
            by_model.setdefault(models[logical], []).append(logical)
        marker_text = json.dumps(
            {"fields": ours_after, "models": by_model, "run": run_signature(options)},
            sort_keys=True,
            separators=(",", ":"),
        )
        wanted = {tags.key(k): v for k, v in wanted_own.items()}
        wanted[tags.key("model")] = model_texts or [options.model]
        wanted[tags.key("version")] = [options.version]
        wanted[tags.key(MARKER)] = [marker_text]
        wanted_upper = {k.upper() for k in wanted}
        for key in tags.own_keys():
            logical = tags.logical_of(key)
            if key.upper() not in wanted_upper and (logical in RESERVED or in_scope(logical)):
                plan.changes.append(FieldChange(key, tags.read(key), None))  # no longer given
        for key, texts in wanted.items():
            current_value = tags.read(key)
            if value_texts(current_value) != value_texts(tags.make(key, texts)):
                plan.changes.append(FieldChange(key, current_value, tags.make(key, texts)))
    except (TagError, ValueError) as err:
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
    from lightning_module.inference.folder_table import audio_files

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


def _counting_keys(
    items: Iterable[tuple[str, Mapping[str, Any] | Exception | None]], count: list[int]
) -> Iterator[tuple[str, Mapping[str, Any] | Exception | None]]:
    """``items`` as they come, counting in ``count[0]`` the predictions that hold a key."""
    for path, prediction in items:
        if isinstance(prediction, Mapping) and prediction.get("key") not in (None, ""):
            count[0] += 1
        yield path, prediction


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
        if options.model == "unknown":
            model = results_model_id(results) or "unknown (from results)"
            options = replace(options, model=model)
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
            options = replace(options, model=model_id_of(model_path, tagger.spec.synthetic_only))
        files = library_files(target)
        items, total = predictions_from_model(tagger, files, options), len(files)
    with_key = [0]
    items = _counting_keys(items, with_key)
    with Journal(journal_path) as journal:
        summary = run_library(items, options, apply, journal, out, total, progress)
    print(summary.line(apply), file=err)
    scope = options.scope()
    if (
        scope is not None
        and "key" in scope
        and not with_key[0]
        and summary.changed + summary.unchanged
    ):
        print(
            "note: --fields key: no prediction holds a key (this model has no key head), "
            "so no key was written",
            file=err,
        )
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
