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
3. **undo** (:func:`plan_undo`): the journal holds each field's exact old value; restoring
   puts them back through the same safe path, field by field, skipping any field changed since.

A kill at any moment leaves every file either original or fully tagged (the rename is the only
step that touches it) and at most a hidden temp file, removed on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from datamodules.audio import AudioError, decoded_samples, encoded_packets
from datamodules.io import atomic_path, remove_stale_temps
from datamodules.schema import FEATURE_UNITS
from lightning_module.console import write_line
from lightning_module.library.tag_fields import (
    MARKER,
    STANDARD_FIELDS,
    NoTagSupport,
    TagError,
    TagFile,
    open_tags,
    value_texts,
)

#: Default of ``--min-probability``: genre/mood go into the standard fields at this or above.
MIN_PROBABILITY = 0.5
#: Fields of ours that are not features (a feature of that name would be skipped).
RESERVED = frozenset({"model", "version", MARKER})
#: How genre labels are spelled in the genre field (others: title case).
GENRE_SPELLING = {"hiphop": "Hip-Hop", "rnb": "R&B", "edm": "EDM", "idm": "IDM"}
#: Journal format version (a line ``{"journal": 1}`` opens every journal).
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class WriteOptions:
    """How to write. ``model``/``version`` are written to ``AUDIOTAGGER_MODEL``/``_VERSION``."""

    min_probability: float = MIN_PROBABILITY
    overwrite: bool = False
    touch: bool = False
    verify: str = "decode"  # how the audio is checked: "decode" (samples) or "packets"
    model: str = "unknown"
    version: str = "unknown"


@dataclass
class FieldChange:
    """One field of one file: ``old`` and ``new`` values (None: absent / removed).

    ``exact``: ``new`` is an exact value read from a file (undo), checked exactly on read-back.
    """

    key: str
    old: Any
    new: Any
    exact: bool = False


@dataclass
class FilePlan:
    """What writing would do to one file: its changes, the user's fields kept, or why it is
    left alone (``skipped``). ``size``/``mtime_ns`` are the file's at planning time."""

    path: str
    shown: str = ""  # the path as the user named it (a symlink stays a symlink)
    label: str = ""
    changes: list[FieldChange] = field(default_factory=list)
    kept: list[tuple[str, list[str], list[str]]] = field(default_factory=list)  # key, user, ours
    skipped: str | None = None
    kept_note: str = "yours; --overwrite writes {ours}"  # how a kept field is explained
    size: int = 0
    mtime_ns: int = 0
    tags: TagFile | None = field(default=None, repr=False)


@dataclass
class Summary:
    """What a run did: counts per outcome and one line per file left alone."""

    changed: int = 0
    unchanged: int = 0
    fields: int = 0
    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self, applied: bool) -> str:
        verb = "changed" if applied else "would change"
        parts = [
            f"{verb} {self.changed} file(s) ({self.fields} field(s))",
            f"unchanged {self.unchanged}",
            f"skipped {len(self.skipped)}",
        ]
        if self.failed:
            parts.append(f"failed {len(self.failed)}")
        if self.kept:
            parts.append(f"kept {self.kept} field(s) you set (--overwrite replaces them)")
        return ", ".join(parts)


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
def _leave_alone(path: str, st: os.stat_result) -> str | None:
    """Why a file must not be rewritten, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not st.st_mode & stat.S_IWUSR:
        return "read-only file: left alone"
    if st.st_nlink > 1:
        return f"has {st.st_nlink} hard links (rewriting would split them): left alone"
    if not os.access(os.path.dirname(path) or ".", os.W_OK):
        return "its folder is read-only: left alone"
    return None


def open_for_plan(shown: str | os.PathLike) -> FilePlan:
    """Stat and load one file's tags; the plan is ``skipped`` when it must be left alone."""
    shown = str(shown)
    path = os.path.realpath(shown)  # write through a symlink, not over it
    plan = FilePlan(path=path, shown=shown)
    try:
        st = os.stat(path)
    except OSError as err:
        plan.skipped = f"cannot read ({err.strerror or err})"
        return plan
    plan.size, plan.mtime_ns = st.st_size, st.st_mtime_ns
    plan.skipped = _leave_alone(path, st)
    if plan.skipped:
        return plan
    try:
        plan.tags = open_tags(path)
        plan.label = plan.tags.label
    except NoTagSupport as err:
        plan.skipped = f"{err}: left alone"
    except TagError as err:
        plan.skipped = str(err)
    return plan


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


# -- applying --------------------------------------------------------------------------------
class Journal:
    """Append-only JSON lines, one per file written, fsync'd before that file is renamed.

    Each line: ``{"file", "format", "time", "changes": [{"field", "old", "new"}, ...]}`` with
    exact old values. Appending (not rewriting) is what makes it a journal: a kill can at most
    leave a torn last line, which :func:`read_journal` ignores.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None

    def append(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if new:
                self._file.write(json.dumps({"journal": JOURNAL_VERSION}) + "\n")
            else:
                self._file.write("\n")  # a torn last line from a kill stays on its own line
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a journal, in order, and warnings (torn or foreign lines are skipped)."""
    records, warnings = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                warnings.append(f"{path}:{number}: unreadable line (torn by a kill?): ignored")
                continue
            if isinstance(record, dict) and "journal" in record and "file" not in record:
                if record["journal"] != JOURNAL_VERSION:
                    raise ValueError(f"{path}: journal version {record['journal']} not supported")
                continue
            if not (isinstance(record, dict) and "file" in record and "changes" in record):
                warnings.append(f"{path}:{number}: not a journal record: ignored")
                continue
            records.append(record)
    return records, warnings


def audio_digest(path: str | os.PathLike, verify: str = "decode") -> str:
    """SHA-256 of a file's audio: with ``verify="decode"`` of the decoded samples (every channel,
    native rate, the decoder's own values), with ``"packets"`` of the undecoded stream (codec
    setup and every packet: the same bitstream decodes to the same samples)."""
    h = hashlib.sha256()
    if verify == "packets":
        for part in encoded_packets(path):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()
    for block in decoded_samples(path):
        block = np.ascontiguousarray(block)
        h.update(f"{block.dtype.str}{block.shape}".encode())
        h.update(block.tobytes())
    return h.hexdigest()


def same_audio(original: str | os.PathLike, copy: str | os.PathLike, verify: str) -> bool:
    """True when both files carry the same audio (:func:`audio_digest`); decoding runs in two
    threads (libsndfile, FFmpeg and hashing release the GIL; demuxing is too quick to gain)."""
    from concurrent.futures import ThreadPoolExecutor

    if verify == "packets":
        return audio_digest(original, verify) == audio_digest(copy, verify)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
        a, b = pool.map(lambda p: audio_digest(p, verify), (original, copy))
    return a == b


class LeftAlone(Exception):
    """The file must be left as it is (changed meanwhile, ...): reported, not an error."""


def _norm(tags: TagFile, key: str) -> str:
    return key.lower() if tags.family == "vorbis" else key


def _verify(fresh: TagFile, changes: list[FieldChange], before: dict[str, str]) -> None:
    """The planned fields read back as planned, and every other field is untouched."""
    for change in changes:
        got = fresh.read(change.key)
        if value_texts(got) != value_texts(change.new) or (
            change.exact and fresh.family != "vorbis" and got != change.new
        ):
            raise TagError(
                f"verification failed: {change.key} reads back {value_texts(got)!r}, "
                f"not {value_texts(change.new)!r}"
            )
    after = fresh.snapshot()
    touched = {_norm(fresh, c.key) for c in changes} | {"<order>"}
    for key in (set(before) | set(after)) - touched:
        if before.get(key) != after.get(key):
            raise TagError(f"verification failed: {key} changed, though it was not to be touched")


def _same_file(path: str, size: int, mtime_ns: int) -> bool:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


def apply_plan(
    plan: FilePlan, journal: Journal, touch: bool = False, verify: str = "decode"
) -> str:
    """Write one planned file safely (see the module docstring); returns ``"changed"``.

    Raises:
        LeftAlone: the file changed since it was planned (it is untouched).
        TagError, AudioError, OSError: writing or verifying failed (it is untouched).
    """
    if plan.tags is None or not plan.changes:
        return "unchanged"
    path, tags = plan.path, plan.tags
    st = os.stat(path)
    if (st.st_size, st.st_mtime_ns) != (plan.size, plan.mtime_ns):
        raise LeftAlone("changed since it was read (size or modification time): left alone")
    remove_stale_temps(path)  # what a killed earlier run left
    before = tags.snapshot()
    with atomic_path(path) as tmp:
        shutil.copy2(path, tmp)  # bytes, mode, times, extended attributes
        record_changes = []
        for change in plan.changes:
            # Each old value is read just before its write, so the journal's sequence of
            # (old, new) can be undone backwards exactly (Vorbis entries keep their position).
            old = tags.read(change.key)
            tags.write(change.key, change.new)
            record_changes.append({"field": change.key, "old": old, "new": change.new})
        tags.save(tmp)
        fresh = open_tags(tmp)
        _verify(fresh, plan.changes, before)
        try:
            identical = same_audio(path, tmp, verify)
        except AudioError as err:
            raise TagError(f"cannot check the audio, so not written ({err})") from err
        if not identical:
            raise TagError("verification failed: the audio of the tagged copy differs")
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):  # only root may give files away
            if os.stat(tmp).st_uid != st.st_uid or os.stat(tmp).st_gid != st.st_gid:
                os.chown(tmp, st.st_uid, st.st_gid)
        if not touch:
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        if not _same_file(path, st.st_size, st.st_mtime_ns):
            raise LeftAlone("changed while it was being tagged: left alone")
        journal.append(
            {
                "file": path,
                "format": plan.label,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "changes": record_changes,
            }
        )
    return "changed"


# -- undo ------------------------------------------------------------------------------------
def plan_undo(path: str, records: list[dict[str, Any]]) -> FilePlan:
    """The changes that put back, field by field, what ``records`` (this file's journal lines,
    oldest first) replaced. A field changed since (neither what we wrote nor the original) is
    kept and reported; one already back is skipped."""
    plan = open_for_plan(path)
    if plan.skipped or plan.tags is None:
        return plan
    tags = plan.tags
    plan.kept_note = "changed since it was written, so not undone; it was {ours}"
    # Undo in memory, newest change first, so each step sees the state it has to invert.
    before = tags.snapshot()
    sequence: list[FieldChange] = []
    try:
        for record in reversed(records):
            for change in reversed(record["changes"]):
                key, old, new = change["field"], change["old"], change["new"]
                current = tags.read(key)
                if value_texts(current) == value_texts(old) and (
                    tags.family == "vorbis" or current == old
                ):
                    continue  # never written (a kill before the rename) or already undone
                if value_texts(current) != value_texts(new):
                    plan.kept.append((key, value_texts(current), value_texts(old)))
                    continue
                sequence.append(FieldChange(key, current, old, exact=True))
                tags.write(key, old)
    except (TagError, KeyError, TypeError, ValueError) as err:
        plan.skipped = f"cannot undo ({err})"
        return plan
    # The plan is applied to a fresh load, so the in-memory edits above are only a simulation.
    fresh = open_tags(plan.path)
    plan.tags, plan.changes = fresh, sequence
    plan.label = fresh.label
    if sequence and tags.snapshot() == before:  # the edits cancel out
        plan.changes = []
    return plan


def journal_files(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Journal records grouped by file (oldest first), files newest last record first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    last: dict[str, int] = {}
    for i, record in enumerate(records):
        grouped.setdefault(record["file"], []).append(dict(record))
        last[record["file"]] = i
    return {f: grouped[f] for f in sorted(grouped, key=lambda f: -last[f])}


# -- presentation ----------------------------------------------------------------------------
def _show(texts: list[str]) -> str:
    if not texts:
        return "(none)"
    return "; ".join(repr(t) for t in texts)


def format_plan(plan: FilePlan, applied: bool = False) -> str:
    """The lines a dry run (or a run) prints for one file: every field old → new."""
    lines = []
    if plan.changes:
        verb = "changed" if applied else "would change"
        lines.append(f"{verb}: {plan.shown}  ({plan.label})")
        width = max(len(c.key) for c in plan.changes)
        for c in plan.changes:
            new = "(removed)" if c.new is None else _show(value_texts(c.new))
            lines.append(f"  {c.key:<{width}}  {_show(value_texts(c.old))} → {new}")
    for key, user, ours in plan.kept:
        if not lines:
            lines.append(f"unchanged: {plan.shown}  ({plan.label})")
        lines.append(f"  kept {key} {_show(user)} ({plan.kept_note.format(ours=_show(ours))})")
    return "\n".join(lines)


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
            summary.skipped.append((str(shown), _reason(prediction, shown)))
            write_line(f"skipped: {shown}: {_reason(prediction, shown)}", out)
            continue
        plan = plan_file(shown, prediction, options)
        _run_one(plan, apply, journal, options.touch, options.verify, summary, bar, out)
    return summary


def run_undo(
    journal_path: str | os.PathLike,
    apply: bool,
    out: IO[str],
    progress: bool = True,
    verify: str = "decode",
) -> Summary:
    """Undo (with ``apply``; else show) every change a journal records, newest first."""
    from tqdm.auto import tqdm

    records, warnings = read_journal(journal_path)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    summary = Summary()
    files = journal_files(records)
    bar = tqdm(files.items(), total=len(files), unit="file", disable=not progress, leave=False)
    for path, file_records in bar:
        plan = plan_undo(path, file_records)
        _run_one(plan, apply, None, False, verify, summary, bar, out)
    return summary


class _NoJournal(Journal):
    """Undo writes no journal of its own: the journal it reads stays the record."""

    def __init__(self) -> None:
        super().__init__(os.devnull)

    def append(self, record: Mapping[str, Any]) -> None:
        pass


def _run_one(
    plan: FilePlan,
    apply: bool,
    journal: Journal | None,
    touch: bool,
    verify: str,
    summary: Summary,
    bar: Any,
    out: IO[str],
) -> None:
    if plan.skipped:
        summary.skipped.append((plan.shown, plan.skipped))
        write_line(f"skipped: {plan.shown}: {plan.skipped}", out)
        return
    summary.kept += len(plan.kept)
    if not plan.changes:
        summary.unchanged += 1
        if plan.kept:
            write_line(format_plan(plan), out)
        return
    if apply:
        try:
            apply_plan(plan, journal or _NoJournal(), touch=touch, verify=verify)
        except LeftAlone as err:
            summary.skipped.append((plan.shown, str(err)))
            write_line(f"skipped: {plan.shown}: {err}", out)
            return
        except (TagError, AudioError, OSError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            summary.failed.append((plan.shown, reason))
            write_line(f"failed: {plan.shown}: {reason} (file left as it was)", out)
            return
    summary.changed += 1
    summary.fields += len(plan.changes)
    write_line(format_plan(plan, applied=apply), out)


def _reason(err: Exception, path: str) -> str:
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


# -- predictions from a results file ---------------------------------------------------------
def _csv_prediction(row: Mapping[str, str]) -> dict[str, Any]:
    """A ``predict_clip --out x.csv`` row in :meth:`ClipPrediction.to_dict` form."""
    prediction: dict[str, Any] = {"path": row.get("path"), "features": {}}
    for task in ("genre", "mood"):
        ranked = [
            {"label": k.split(":", 1)[1], "probability": float(v)}
            for k, v in row.items()
            if k and k.startswith(f"{task}:") and v not in (None, "")
        ]
        if not ranked and row.get(task):
            ranked = [{"label": row[task], "probability": float(row.get(f"{task}_probability"))}]
        prediction[task] = sorted(ranked, key=lambda r: -r["probability"])
    # Only the audio features the project defines: a results table also carries bookkeeping
    # columns (file size, mtime, ...) that are no model output. An empty cell: not predicted.
    for key in FEATURE_UNITS:
        value = row.get(key)
        if value not in (None, ""):
            prediction["features"][key] = float(value)
    return prediction


def read_results(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """(audio path, prediction) from a ``predict_clip.py FOLDER --out`` file (``.jsonl`` or
    ``.csv``). A relative audio path is taken from the current folder, or else from the
    results file's folder.

    Raises:
        ValueError: a malformed line or row (one line naming the file, line and field).
    """
    import csv

    path = Path(path)
    base = path.resolve().parent

    def located(audio: str) -> str:
        p = Path(audio)
        if p.is_absolute() or p.exists() or not (base / p).exists():
            return str(p)
        return str(base / p)

    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{path}: no 'path' column (not a predict_clip results file)")
            for number, row in enumerate(reader, 2):
                try:
                    prediction = _csv_prediction(row)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path}:{number}: malformed row ({err})") from err
                if not row.get("path"):
                    raise ValueError(f"{path}:{number}: empty 'path'")
                yield located(row["path"]), prediction
            return
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
        for number, line in lines:
            try:
                prediction = json.loads(line)
            except ValueError as err:
                if number == lines[-1][0] and not line.endswith("\n"):
                    continue  # the torn last line of a killed predict_clip run: not a result
                raise ValueError(f"{path}:{number}: not JSON ({err.args[0]})") from err
            if not isinstance(prediction, dict) or not prediction.get("path"):
                raise ValueError(f"{path}:{number}: no 'path' (not a predict_clip results line)")
            yield located(str(prediction["path"])), prediction


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
    from lightning_module.inference.output import audio_files

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
) -> int:
    """``scripts/write_tags.py`` without the argument parsing: predict (one model load) or
    read ``results``, plan, and with ``apply`` write; prints the changes and a summary.
    Returns the exit status (0 ok, 1 some file failed, 2 nothing usable)."""
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    if results:
        items, total = predictions_from_results(results, target)
    else:
        from lightning_module.inference.tagger import Tagger, find_checkpoint

        model_path = checkpoint or str(find_checkpoint())
        tagger = Tagger.from_file(model_path, device=device)
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


def undo_command(
    journal_path: str,
    apply: bool,
    progress: bool = True,
    verify: str = "decode",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``scripts/write_tags.py --undo`` without the argument parsing."""
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    summary = run_undo(journal_path, apply, out, progress, verify)
    verb = "restored" if apply else "would restore"
    print(
        f"{verb} {summary.changed} file(s) ({summary.fields} field(s)), already as before "
        f"{summary.unchanged}, skipped {len(summary.skipped)}"
        + (f", kept {summary.kept} field(s) changed since" if summary.kept else "")
        + (f", failed {len(summary.failed)}" if summary.failed else ""),
        file=err,
    )
    return 1 if summary.failed else 0
