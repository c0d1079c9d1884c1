"""Undo of journals holding one, two or three runs over the same files, in every format: the
tags come back byte for byte, the files byte-identical where docs/tag_your_library.md says so
(and differing exactly as it says where not), and a second undo finds nothing to do."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import soundfile as sf

from lightning_module.library import write_tags as wt
from lightning_module.library.tag_fields import open_tags
from tests.lightning_module.library.formats import (
    FORMATS,
    UNDO_GROWTH,
    add_padding,
    make_file,
    mutagen_view,
    read_field,
    tone,
)

#: Three runs, as users make them: a first model; a newer model that is unsure of the genre and
#: gives fewer features; then a rerun with --overwrite (it replaces the genre the user typed).
RUNS = [
    (
        {
            "genre": [{"label": "rock", "probability": 0.91}],
            "mood": [{"label": "happy", "probability": 0.72}],
            "features": {"energy": 0.71234, "valence": 0.4, "tempo": 121.6, "loudness": -9.87},
        },
        wt.WriteOptions(model="first.ckpt sha256:0123456789ab", version="audiotagger 0.1"),
    ),
    (
        {
            "genre": [{"label": "rock", "probability": 0.3}],
            "mood": [{"label": "sad", "probability": 0.8}],
            "features": {"energy": 0.2, "tempo": 90.2},
        },
        wt.WriteOptions(model="second.ckpt sha256:abcdef012345", version="audiotagger 0.2"),
    ),
    (
        {
            "genre": [{"label": "hiphop", "probability": 0.95}],
            "mood": [{"label": "calm", "probability": 0.6}],
            "features": {"danceability": 0.8, "tempo": 95.0},
        },
        wt.WriteOptions(
            model="second.ckpt sha256:abcdef012345", version="audiotagger 0.2", overwrite=True
        ),
    ),
]
#: Besides :data:`FORMATS`: a FLAC with a PADDING block and an m4a with a ``free`` atom after
#: its tags, as ffmpeg writes them, a WAV that already has an ID3 chunk, and an AIFF.
KINDS = (*FORMATS, "flac_padded", "m4a_padded", "wav_tagged", "aiff")


def make(folder: Path, kind: str, seed: int) -> Path:
    if kind.endswith("_padded"):
        return add_padding(make_file(folder, kind.removesuffix("_padded"), seed, stem=kind))
    if kind == "aiff":
        path = folder / "aiff.aiff"
        sf.write(path, tone(seed=seed), 44100, format="AIFF", subtype="PCM_16")
        return path
    if kind == "wav_tagged":
        path = make_file(folder, "wav", seed, stem=kind)
        tags = open_tags(path)
        tags.write("TIT2", {"frame": "TIT2", "encoding": 3, "text": ["A title"]})
        tags.save(path)
        return path
    return make_file(folder, kind, seed)


def write_runs(files: list[Path], journal: Path, runs: int, first: int = 0) -> None:
    """Runs ``first`` to ``runs - 1`` of :data:`RUNS` over ``files``, journaled."""
    for prediction, options in RUNS[first:runs]:
        out = io.StringIO()
        with wt.Journal(journal) as j:
            summary = wt.run_library(
                [(str(p), prediction) for p in files], options, True, j, out, progress=False
            )
        assert not summary.failed and summary.changed == len(files), out.getvalue()


def undo(journal: Path) -> tuple[wt.Summary, str]:
    out = io.StringIO()
    summary = wt.run_undo(journal, apply=True, out=out, progress=False, verify="packets")
    return summary, out.getvalue()


@pytest.mark.parametrize("runs", [1, 2, 3])
def test_undo_of_several_runs_restores_every_format(tmp_path: Path, runs: int) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    files = {kind: make(folder, kind, seed) for seed, kind in enumerate(KINDS)}
    original = {
        k: (p.read_bytes(), mutagen_view(p), p.stat().st_mtime_ns) for k, p in files.items()
    }
    journal = tmp_path / "journal.jsonl"
    write_runs(list(files.values()), journal, runs)
    assert read_field(files["flac"], "MOOD") == [["Happy", "Sad", "Calm"][runs - 1].title()]

    summary, out = undo(journal)
    assert not summary.failed and not summary.skipped and not summary.kept, out
    assert summary.changed == len(files), out
    for kind, path in files.items():
        data, view, mtime = original[kind]
        assert mutagen_view(path) == view, f"{kind}: tags not restored byte for byte"
        assert path.stat().st_mtime_ns == mtime, kind
        grown = UNDO_GROWTH.get(kind)
        if grown is None:
            assert path.read_bytes() == data, f"{kind}: not byte-identical to the original"
        else:  # the tags are the original's; only an empty padding block/atom was left
            assert len(path.read_bytes()) == len(data) + grown, kind
    assert not list(folder.glob(".*")), "temp files left behind"

    again, out = undo(journal)  # everything is back: nothing to do, nothing reported kept
    assert (again.changed, again.unchanged, again.kept) == (0, len(files), 0), out


def test_a_field_changed_after_two_runs_is_kept_once_and_the_rest_restored(
    tmp_path: Path,
) -> None:
    path = make_file(tmp_path, "flac")
    view = mutagen_view(path)
    journal = tmp_path / "journal.jsonl"
    write_runs([path], journal, 2)
    tags = open_tags(path)
    tags.write("MOOD", {"values": ["Melancholic"]})  # the user's own word, after our runs
    tags.save(path)

    summary, out = undo(journal)
    assert summary.changed == 1 and summary.kept == 1, out
    assert out.count("kept MOOD 'Melancholic'") == 1, out
    assert read_field(path, "MOOD") == ["Melancholic"]
    assert [f for f in mutagen_view(path) if f[0] != "MOOD"] == view


def test_undo_skips_a_run_that_never_reached_the_file(tmp_path: Path) -> None:
    """A kill between the journal line and the rename: the last run is journaled but the file
    still holds the run before it; undo goes back from there."""
    path = make_file(tmp_path, "mp3_v23")
    data = path.read_bytes()
    journal = tmp_path / "journal.jsonl"
    write_runs([path], journal, 1)
    tagged = path.read_bytes()
    write_runs([path], journal, 2, first=1)
    stat = path.stat()
    path.write_bytes(tagged)  # as if run 2's rename never happened
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    summary, out = undo(journal)
    assert summary.changed == 1 and not summary.kept and not summary.failed, out
    assert path.read_bytes() == data
