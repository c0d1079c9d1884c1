"""The safe write path shared by tagging and undo: a plan per file, applied to a verified copy
renamed over the original (see :mod:`.write_tags` for the whole flow), and how plans are shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from datamodules.audio import AudioError, decoded_samples, encoded_packets
from datamodules.io import atomic_path, remove_stale_temps
from lightning_module.console import write_line
from lightning_module.library.journal import Journal
from lightning_module.library.tag_fields import (
    NoTagSupport,
    TagError,
    TagFile,
    open_tags,
    value_texts,
)


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
    # Undo only. ``steps``: the writes, in order, when ``changes`` holds one composed change
    # per field (several runs each changed it); ``expected``: the whole tag (as
    # :meth:`TagFile.snapshot`) the copy must read back as; ``target_size``: the file size
    # (bytes) the padding aims at, the original's, so the file comes back byte-identical where
    # the format allows; ``drop_container``: remove the tag container (the original had none).
    steps: list[FieldChange] | None = None
    expected: dict[str, str] | None = None
    target_size: int | None = None
    drop_container: bool = False


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


# -- opening ----------------------------------------------------------------------------------
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


# -- applying --------------------------------------------------------------------------------
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


def norm_key(tags: TagFile, key: str) -> str:
    """A field's key as compared: Vorbis comment keys are case-insensitive."""
    return key.lower() if tags.family == "vorbis" else key


def _verify(
    fresh: TagFile,
    changes: list[FieldChange],
    before: dict[str, str],
    expected: dict[str, str] | None = None,
) -> None:
    """The planned fields read back as planned, every other field is untouched and, when
    ``expected`` is given, the whole tag is exactly that (order included)."""
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
    touched = {norm_key(fresh, c.key) for c in changes} | {"<order>"}
    for key in (set(before) | set(after)) - touched:
        if before.get(key) != after.get(key):
            raise TagError(f"verification failed: {key} changed, though it was not to be touched")
    if expected is not None and after != expected:
        differs = sorted(k for k in set(after) | set(expected) if after.get(k) != expected.get(k))
        raise TagError(f"verification failed: {', '.join(differs)} not as planned")


def _padding_towards(target_size: int | None, size: int) -> Callable[[Any], int] | None:
    """A mutagen padding function that makes a file of ``size`` bytes ``target_size`` bytes
    long after saving (None: mutagen's default padding).

    mutagen passes ``info.padding``, the padding left if the file kept its size; giving up
    ``size - target_size`` of it lands on the target. Below zero (the tag is now bigger than the
    original's) no padding is left, which only means a later write rewrites the file.
    """
    if target_size is None:
        return None
    return lambda info: max(0, info.padding - (size - target_size))


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
        # Whether the file had a tag container at all, and its size: what undo needs to give
        # back the original bytes (remove a container we added, size the padding as it was).
        had_tags = tags.audio.tags is not None
        record_changes = []
        for change in plan.steps if plan.steps is not None else plan.changes:
            # Each old value is read just before its write, so the journal's sequence of
            # (old, new) can be undone backwards exactly (Vorbis entries keep their position).
            old = tags.read(change.key)
            tags.write(change.key, change.new)
            record_changes.append({"field": change.key, "old": old, "new": change.new})
        tags.save(tmp, padding=_padding_towards(plan.target_size, st.st_size))
        for _ in range(3):
            # The padding is sized from the file's size, but in an Ogg file the page header
            # (its lacing values) shrinks or grows with the comment packet too, so a big
            # change can land a few bytes off: saving again from there lands on the size.
            size = os.path.getsize(tmp)
            if plan.target_size is None or size == plan.target_size:
                break
            tags.save(tmp, padding=_padding_towards(plan.target_size, size))
        if plan.drop_container:
            tags.remove_container(tmp)
        fresh = open_tags(tmp)
        _verify(fresh, plan.changes, before, plan.expected)
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
                "before": {"size": st.st_size, "tags": had_tags},
                "changes": record_changes,
            }
        )
    return "changed"


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


class _NoJournal(Journal):
    """Undo writes no journal of its own: the journal it reads stays the record."""

    def __init__(self) -> None:
        super().__init__(os.devnull)

    def append(self, record: Mapping[str, Any]) -> None:
        pass


def run_one(
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


def reason_of(err: Exception, path: str) -> str:
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
