"""The folder table: tag every file below a folder into one table (CSV or JSON lines), every file
accounted for, resumable after a kill. (Tag writing and search are ``lightning_module.library``.)

* **Listing** (:func:`list_library`): every file below the folder is classified by its name
  (:func:`datamodules.audio.classify_path`). Audio files are tagged; sidecars (covers, cue sheets,
  playlists, lyrics, rip logs) and hidden files and folders (``.DS_Store``, ``._song.m4a``) are
  counted as *not audio*, not as errors; a file with any other extension is *skipped* as
  ``unknown format`` without being opened. Why not sniff its content with ``audio_info``: FFmpeg
  guesses formats from a few bytes and finds "MPEG audio" in many a binary file (libsndfile does
  the same for anything named .mp3, see ``datamodules/audio.py``), so sniffing every PDF, ZIP and
  executable of a home folder would be slow and would tag noise; the reason line tells the user
  to rename a real audio file instead. Symlinked folders are followed once (loops are cut).
* **Nothing skipped silently**: every file not tagged gets one line ``skipped: <file>: <reason>``
  and :meth:`LibraryReport.summary` counts them by reason (:func:`skip_reason`).
* **Resumable** (``out=``): each row also carries the file's ``file_bytes`` and
  ``file_mtime_ns``, and ``<out>.state.json`` records the model (path, sha256, size), the folder
  and the settings. A re-run keeps the rows of files whose path, size and mtime are unchanged,
  drops those of changed or vanished files, tags the rest and appends; a different model, folder
  or setting is refused (one line) unless ``force=True``, which starts the table over. Each row is
  appended with one ``write`` of the whole line (``O_APPEND``), so a kill loses at most the files
  in flight and at worst leaves one torn last line, which the next run drops. Appending cannot go
  through ``datamodules.io`` (a whole-file atomic replace per row would cost O(n²)); the rewrites
  a resume needs (dropping rows) do.
* **Deterministic**: :meth:`Tagger.predict_files` runs full batches only, so a resumed table is
  byte-identical to one written in one go, apart from the order of its rows.
* **Processes** (``workers=N``): files decode in N worker processes, the model runs in this one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datamodules.audio import AUDIO_EXTENSIONS, AudioError
from datamodules.io import atomic_open, file_sha256, write_json_atomic
from lightning_module.console import write_line
from lightning_module.inference.formats.results import FORMATS, PredictionWriter, RowFormat
from lightning_module.inference.listing import (  # noqa: F401 (re-exported)
    Listing,
    _unknown_format,
    audio_files,
    list_library,
)
from lightning_module.inference.tagger import Tagger

#: ``tags.csv`` → ``tags.csv.state.json``: which model and settings wrote the table.
STATE_SUFFIX = ".state.json"
STATE_KIND = "audiotagger library table"
STATE_VERSION = 1
#: Columns (CSV) / keys (JSON lines) after the prediction: what a resumed run compares.
IDENTITY_COLUMNS = ("file_bytes", "file_mtime_ns")
#: (text in the decoder's reason, the reason the summary counts), first match wins; anything
#: else the decoder refuses counts as :data:`CORRUPT`.
SKIP_REASONS: tuple[tuple[str, str], ...] = (
    ("unknown format", "unknown format"),
    ("DRM-protected", "DRM-protected"),
    ("no audio stream", "no audio stream"),
    ("too short", "too short"),
    ("audio is silent", "silent"),
    ("empty file", "empty"),
    ("file too large", "too large"),
    ("no audio samples", "no audio in range"),
    ("file not found", "vanished"),
    ("not a regular file", "not a regular file"),
    ("cannot list folder", "unreadable folder"),
)
CORRUPT = "corrupt or unreadable"


class LibraryError(ValueError):
    """A table that cannot be resumed as asked; ``str(err)`` is one line naming the file."""


def skip_reason(reason: str) -> str:
    """The summary's name for a decoder's reason (the text after ``"<file>: "``)."""
    for text, name in SKIP_REASONS:
        if text in reason:
            return name
    return CORRUPT


# -- listing --------------------------------------------------------------------------------------


@dataclass
class LibraryReport:
    """What :func:`tag_library` did."""

    tagged: int = 0
    #: rows of an earlier run kept (their files unchanged)
    kept: int = 0
    #: rows of an earlier run dropped: file changed or gone, or a torn / damaged line
    dropped: int = 0
    #: (file, the decoder's reason) for each file not tagged
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: kind → count of files that are not audio (see :class:`Listing`)
    not_audio: dict[str, int] = field(default_factory=dict)

    def skip_counts(self) -> dict[str, int]:
        """Skipped files by reason (:func:`skip_reason`)."""
        return dict(sorted(Counter(skip_reason(reason) for _, reason in self.skipped).items()))

    def summary(self, out: str | os.PathLike | None = None) -> str:
        """One line, e.g. ``tagged 4 file(s), skipped 2 (corrupt or unreadable 1, unknown
        format 1), not audio 3 (hidden 1, sidecar 2); wrote tags.csv``."""

        def counted(counts: dict[str, int]) -> str:
            return " (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"

        parts = [f"tagged {self.tagged} file(s)"]
        if self.kept or self.dropped:
            parts.append(
                f"kept {self.kept} from an earlier run"
                + (f" (dropped {self.dropped} stale or torn row(s))" if self.dropped else "")
            )
        counts = self.skip_counts()
        parts.append(f"skipped {len(self.skipped)}" + (counted(counts) if counts else ""))
        not_audio = {k: v for k, v in self.not_audio.items() if v}
        if not_audio:
            parts.append(f"not audio {sum(not_audio.values())}" + counted(not_audio))
        return ", ".join(parts) + (f"; wrote {out}" if out else "")


# -- the table ------------------------------------------------------------------------------------
class _Table:
    """A table as resuming reads it: the rows (:class:`RowFormat`: CSV or JSON lines, each plus
    the :data:`IDENTITY_COLUMNS`) split back into their path, identity and raw text."""

    def __init__(self, rows: RowFormat) -> None:
        self.rows, self.fmt, self.columns = rows, rows.fmt, rows.columns

    def header(self) -> str:
        return self.rows.header()

    def read(self, text: str) -> tuple[str | None, list[tuple[str, tuple[int, int], str]], int]:
        """(header line or None, [(path, identity, raw text)] of the whole rows, count of torn
        or damaged rows) of a table this class wrote."""
        return self._read_jsonl(text) if self.fmt == "jsonl" else self._read_csv(text)

    def _read_jsonl(self, text: str) -> tuple[None, list[tuple[str, tuple[int, int], str]], int]:
        rows, bad = [], 0
        lines = text.split("\n")
        bad += bool(lines[-1])  # after the last newline: a torn line (or nothing)
        for line in lines[:-1]:
            try:
                record = json.loads(line)
                rows.append((record["path"], _identity(record), line + "\n"))
            except (ValueError, KeyError, TypeError):
                bad += 1
        return None, rows, bad

    def _read_csv(
        self, text: str
    ) -> tuple[str | None, list[tuple[str, tuple[int, int], str]], int]:
        rows, bad, header = [], 0, None
        for fields, raw in _csv_records(text):
            if header is None:
                header = raw
                continue
            if not raw.endswith("\n") or len(fields) != len(self.columns):
                bad += 1  # torn by a kill (the last row), or edited by hand
                continue
            try:
                rows.append(
                    (fields[0], _identity(dict(zip(self.columns, fields, strict=True))), raw)
                )
            except (ValueError, KeyError):
                bad += 1
        return header, rows, bad


def _identity(record: dict[str, Any]) -> tuple[int, int]:
    return tuple(int(record[c]) for c in IDENTITY_COLUMNS)  # type: ignore[return-value]


def _csv_records(text: str) -> Iterator[tuple[list[str], str]]:
    """(fields, raw text) of each CSV record, the raw text exactly as in ``text`` (a quoted field
    may span lines); a record cut off inside quotes comes last, without its newline."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines())
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:  # damaged beyond parsing: what is left is a torn tail
            yield [], "".join(consumed)
            return
        yield fields, "".join(consumed)
        consumed.clear()


def model_file_record(path: str | os.PathLike) -> dict[str, Any]:
    """The model file as the state records it: resolved path, size in bytes and sha256."""
    path = Path(path)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def state_path(out: str | os.PathLike) -> Path:
    """Where the state of table ``out`` lives: ``<out>.state.json``."""
    return Path(str(out) + STATE_SUFFIX)


def _expected_state(
    tagger: Tagger,
    model: str | os.PathLike,
    folder: Path,
    fmt: str,
    top: int | None,
    offset: float,
    duration: float | None,
) -> dict[str, Any]:
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "model": model_file_record(model),
        "folder": str(folder),
        "folder_resolved": os.path.realpath(folder),
        # What changes the rows (batch size and device change only float rounding).
        "settings": {
            "format": fmt,
            "offset": float(offset),
            "duration": None if duration is None else float(duration),
            "top": top if fmt == "jsonl" else None,
            "sample_rate": tagger.sample_rate,
            "window_samples": tagger.window,
            "hop_samples": tagger.hop,
            "max_windows": tagger.max_windows,
        },
    }


def state_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why rows written under state ``old`` cannot be resumed under ``new`` (None: they can).

    A state is ``kind``, ``version``, ``model`` (:func:`model_file_record`), ``settings`` and,
    for a folder table, ``folder`` / ``folder_resolved``; the folder table and the catalogue's
    Parquet table (``catalogue/table.py``) both resume by it."""
    if (old.get("kind"), old.get("version")) != (new["kind"], new["version"]):
        return "by another program or version (unknown state file)"
    was, now = old.get("model") or {}, new["model"]
    if was.get("sha256") != now["sha256"]:
        return (
            f"with another model (sha256 {str(was.get('sha256'))[:12]} of {was.get('path')}; "
            f"now {now['sha256'][:12]} of {now['path']})"
        )
    where = (old.get("folder"), old.get("folder_resolved"))
    if "folder" in new and where != (new["folder"], new["folder_resolved"]):
        return f"for folder {old.get('folder')!r} ({old.get('folder_resolved')})"
    settings = old.get("settings") or {}
    changed = [
        f"{key} {settings.get(key)!r} -> {value!r}"
        for key, value in new["settings"].items()
        if settings.get(key) != value
    ]
    return f"with other settings ({', '.join(changed)})" if changed else None


def _resume(
    out: Path,
    table: _Table,
    expected: dict[str, Any],
    identities: dict[str, tuple[int, int]],
    force: bool,
    report: LibraryReport,
) -> set[str]:
    """Make ``out`` ready to append to; returns the paths whose rows are kept.

    A new table (or ``force``): state, then an empty table with its header. An existing one:
    checked against its state, its rows of unchanged files kept (the file is rewritten,
    atomically, only when some row must go).
    """
    state = state_path(out)
    if out.exists() and not force:
        if not out.is_file():
            raise LibraryError(f"{out}: not a regular file")
        if not state.is_file():
            raise LibraryError(
                f"{out}: exists, and no {state.name} says a library run wrote it; "
                "pass --force to overwrite it, or choose another --out"
            )
        try:
            old = json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LibraryError(f"{state}: unreadable ({err}); pass --force to start over") from err
        why = state_difference(old if isinstance(old, dict) else {}, expected)
        if why is not None:
            raise LibraryError(
                f"{out}: written {why}; pass --force to re-tag everything into it, "
                "or choose another --out"
            )
        text = out.read_bytes().decode("utf-8", "surrogateescape")
        header, rows, bad = table.read(text)
        if header is not None and header != table.header():
            raise LibraryError(
                f"{out}: its columns are not this model's (written by another version?); "
                "pass --force to re-tag everything into it"
            )
        kept: dict[str, str] = {}
        for path, identity, raw in rows:
            if identities.get(path) == identity and path not in kept:
                kept[path] = raw
        report.kept = len(kept)
        report.dropped = len(rows) - len(kept) + bad
        if report.dropped or (header is None and table.fmt == "csv"):
            _write_atomic(out, table.header() + "".join(kept.values()))
        return set(kept)
    write_json_atomic(state, expected)
    _write_atomic(out, table.header())
    return set()


def _write_atomic(path: Path, text: str) -> None:
    with atomic_open(path, "wb") as f:
        f.write(text.encode("utf-8", "surrogateescape"))


class _Appender:
    """Appends whole rows to a file, one ``write`` each (``O_APPEND``): a kill tears at most the
    last row."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8", "surrogateescape"))
        while data:
            data = data[os.write(self.fd, data) :]

    def flush(self) -> None:
        pass  # each write went to the file; close() syncs it

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


# -- the run --------------------------------------------------------------------------------------
def tag_library(
    tagger: Tagger,
    folder: str | os.PathLike,
    stream: IO[str] | None = None,
    fmt: str = "csv",
    top: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    progress: bool = True,
    errors: IO[str] | None = None,
    *,
    out: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    force: bool = False,
    workers: int = 0,
) -> LibraryReport:
    """Tag every audio file under ``folder`` with one model into one CSV / JSON lines table.

    Args:
        tagger: the model.
        folder: the library (searched recursively).
        stream: write the table here as results arrive (e.g. stdout); or give ``out``.
        fmt: ``csv`` or ``jsonl``.
        top: JSON lines: how many genres / moods / tags per row (``None``: all).
        offset, duration: tag seconds [offset, offset + duration) of every file.
        progress: a tqdm bar on stderr.
        errors: where the ``skipped: <file>: <reason>`` lines go (``None``: nowhere).
        out: a resumable table file (see the module docstring); ``model`` is then required.
        model: the model file the tagger was loaded from (its sha256 goes in the state).
        force: with ``out``: start the table over even if it was written by another model,
            folder or settings (or is not a library table at all).
        workers: decode in this many processes (0: in two threads of this process).

    Returns:
        What was tagged, kept, skipped (each with its reason) and left as not audio.

    Raises:
        AudioError: ``folder`` is not a folder or holds no audio file.
        LibraryError: ``out`` cannot be resumed as asked (without ``force``).
    """
    from tqdm.auto import tqdm

    if (stream is None) == (out is None):
        raise ValueError("give exactly one of stream= and out=")
    if out is not None and model is None:
        raise ValueError("out= needs model= (the file the tagger was loaded from)")
    folder = Path(folder)
    out = None if out is None else Path(out)
    listing = list_library(folder, exclude=[] if out is None else [out, state_path(out)])
    if not listing.audio:
        found = len(listing.unknown) + sum(listing.not_audio.values())
        raise AudioError(
            f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})"
            + (f"; found {found} other file(s)" if found else "")
        )
    report = LibraryReport(not_audio=dict(listing.not_audio))

    def skip(message: str, path: str) -> None:
        reason = message[len(path) + 2 :] if message.startswith(f"{path}: ") else message
        report.skipped.append((path, reason))
        if errors is not None:
            write_line(f"skipped: {message}", errors)

    for path, reason in listing.unreadable:
        skip(f"{path}: {reason}", str(path))
    for path in listing.unknown:
        skip(_unknown_format(path), str(path))
    identities: dict[str, tuple[int, int]] = {}
    todo: list[Path] = []
    for path in listing.audio:
        try:
            st = path.stat()
        except OSError as err:
            skip(f"{path}: cannot read ({err.strerror})", str(path))
            continue
        identities[str(path)] = (st.st_size, st.st_mtime_ns)
        todo.append(path)

    if fmt not in FORMATS:
        raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
    sink: _Appender | IO[str]
    if out is not None:
        expected = _expected_state(tagger, model, folder, fmt, top, offset, duration)  # type: ignore[arg-type]
        table = _Table(RowFormat(fmt, tagger.spec, top, IDENTITY_COLUMNS))
        kept = _resume(out, table, expected, identities, force, report)
        todo = [p for p in todo if str(p) not in kept]
        sink = _Appender(out)
    else:
        sink = stream  # type: ignore[assignment]
    writer = PredictionWriter(
        sink, fmt, tagger.spec, top, extra_columns=IDENTITY_COLUMNS, header=out is None
    )
    try:
        results = tagger.predict_files(todo, offset, duration, decode_processes=workers)
        bar = tqdm(results, total=len(todo), unit="file", disable=not progress, leave=False)
        for path, result in zip(todo, bar, strict=True):  # one result per file, in order
            if isinstance(result, AudioError):
                skip(str(result), str(path))  # above the bar, not through it
            else:
                identity = dict(zip(IDENTITY_COLUMNS, identities[str(path)], strict=True))
                writer.write(result, identity)
                report.tagged += 1
    finally:
        if isinstance(sink, _Appender):
            sink.close()
        else:
            sink.flush()
    return report
