"""Writing tags into every format: dry runs touch nothing, writes read back, audio stays
bit-identical, user fields survive, undo restores the tags byte for byte, and files that must
be left alone are."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lightning_module.library import write_tags as wt
from lightning_module.library.tag_fields import PREFIX, open_tags
from tests.lightning_module.library.formats import (
    FORMATS,
    USER_GENRE,
    file_digest,
    make_file,
    mutagen_view,
    read_field,
)

PREDICTION = {
    "genre": [{"label": "rock", "probability": 0.91}, {"label": "pop", "probability": 0.05}],
    "mood": [{"label": "happy", "probability": 0.72}],
    "features": {"energy": 0.71234, "valence": 0.4, "tempo": 121.6, "loudness": -9.87},
}
OPTIONS = wt.WriteOptions(model="tiny.ckpt sha256:0123456789ab", version="audiotagger test")
#: the format's genre / mood / BPM / energy keys
KEYS = {
    "id3": ("TCON", "TMOO", "TBPM", f"TXXX:{PREFIX}ENERGY"),
    "id3v23": ("TCON", "TXXX:MOOD", "TBPM", f"TXXX:{PREFIX}ENERGY"),
    "vorbis": ("GENRE", "MOOD", "BPM", f"{PREFIX}ENERGY"),
    "mp4": ("©gen", "----:com.apple.iTunes:MOOD", "tmpo", f"----:com.apple.iTunes:{PREFIX}ENERGY"),
}


def family(kind: str) -> str:
    if kind == "mp3_v23":
        return "id3v23"
    if kind.startswith("mp3") or kind == "wav":
        return "id3"
    return "mp4" if kind == "m4a" else "vorbis"


def run(items, apply: bool, journal: Path | None = None, options=OPTIONS) -> wt.Summary:
    out = io.StringIO()
    with wt.Journal(journal or Path(tempfile.mkdtemp()) / "journal.jsonl") as j:
        summary = wt.run_library(items, options, apply, j, out, progress=False)
    assert not summary.failed, out.getvalue()
    return summary


@pytest.fixture
def library(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "music"
    folder.mkdir()
    return {kind: make_file(folder, kind, seed=i) for i, kind in enumerate(FORMATS)}


def test_every_format_round_trips(library: dict[str, Path], tmp_path: Path) -> None:
    items = [(str(p), PREDICTION) for p in library.values()]
    before = {k: (p.read_bytes(), p.stat().st_mtime_ns) for k, p in library.items()}
    views = {k: mutagen_view(p) for k, p in library.items()}
    audio = {k: wt.audio_digest(p) for k, p in library.items()}
    for p in library.values():
        os.chmod(p, 0o640)
    modes = {k: p.stat().st_mode for k, p in library.items()}

    dry = run(items, apply=False)
    assert dry.changed == len(library) and not dry.skipped and not dry.failed
    for kind, p in library.items():  # a dry run changes nothing on disk
        assert (p.read_bytes(), p.stat().st_mtime_ns) == before[kind], kind

    journal = tmp_path / "journal.jsonl"
    done = run(items, apply=True, journal=journal)
    assert done.changed == len(library) and not done.failed, done.failed
    assert done.kept == 2  # the user's genre in the two tagged mp3s
    for kind, p in library.items():
        genre, mood, bpm, energy = KEYS[family(kind)]
        expected_genre = [USER_GENRE] if kind in ("mp3_v23", "mp3_v24") else ["Rock"]
        assert read_field(p, genre) == expected_genre, kind
        assert read_field(p, mood) == ["Happy"], kind
        assert read_field(p, bpm) == ["122"], kind
        assert read_field(p, energy) == ["0.712"], kind
        assert wt.audio_digest(p) == audio[kind], f"{kind}: audio changed"
        assert p.stat().st_mtime_ns == before[kind][1], f"{kind}: mtime changed"
        assert p.stat().st_mode == modes[kind], f"{kind}: mode changed"
    assert not list((tmp_path / "music").glob(".*")), "temp files left behind"
    # the user's other fields are still there, picture included
    for kind in ("mp3_v23", "mp3_v24"):
        assert set(views[kind]) <= set(mutagen_view(library[kind])), kind
    assert open_tags(library["mp3_v23"]).id3_version == 3  # not silently upgraded to v2.4

    again = run(items, apply=True, journal=journal)  # idempotent
    assert again.changed == 0 and again.unchanged == len(library)

    out = io.StringIO()
    undone = wt.run_undo(journal, apply=True, out=out, progress=False)
    assert undone.changed == len(library) and not undone.failed, out.getvalue()
    for kind, p in library.items():
        assert mutagen_view(p) == views[kind], f"{kind}: tags not restored byte for byte"
        assert wt.audio_digest(p) == audio[kind]
        assert p.stat().st_mtime_ns == before[kind][1]
    assert wt.run_undo(journal, apply=True, out=io.StringIO(), progress=False).changed == 0


def test_user_genre_survives_unless_overwrite(tmp_path: Path) -> None:
    path = make_file(tmp_path, "mp3_v24")
    run([(str(path), PREDICTION)], apply=True)
    assert read_field(path, "TCON") == [USER_GENRE]
    overwrite = wt.WriteOptions(**{**OPTIONS.__dict__, "overwrite": True})
    run([(str(path), PREDICTION)], apply=True, options=overwrite)
    assert read_field(path, "TCON") == ["Rock"]


def test_own_values_are_updated_and_withdrawn(tmp_path: Path) -> None:
    path = make_file(tmp_path, "flac")
    run([(str(path), PREDICTION)], apply=True)
    # a later model: unsure of the genre, no tempo, no loudness
    unsure = {
        "genre": [{"label": "rock", "probability": 0.3}],
        "mood": [{"label": "calm", "probability": 0.8}],
        "features": {"energy": 0.2},
    }
    run([(str(path), unsure)], apply=True)
    assert read_field(path, "GENRE") == [] and read_field(path, "BPM") == []
    assert read_field(path, "MOOD") == ["Calm"]
    assert read_field(path, f"{PREFIX}LOUDNESS") == [] and read_field(path, f"{PREFIX}ENERGY")
    # a genre the user typed in after our run is theirs
    tags = open_tags(path)
    tags.write("GENRE", {"values": ["Shoegaze"]})
    tags.save(path)
    run([(str(path), PREDICTION)], apply=True)
    assert read_field(path, "GENRE") == ["Shoegaze"]


def test_only_predicted_features_are_written(tmp_path: Path) -> None:
    path = make_file(tmp_path, "ogg")
    run([(str(path), {"genre": [], "mood": [], "features": {"danceability": 0.5}})], apply=True)
    own = {k for k, _ in mutagen_view(path) if k.upper().startswith(PREFIX)}
    assert own == {
        f"{PREFIX}DANCEABILITY",
        f"{PREFIX}MODEL",
        f"{PREFIX}VERSION",
        f"{PREFIX}WRITTEN",
    }
    assert read_field(path, "BPM") == [] and read_field(path, "GENRE") == []


def test_files_left_alone(tmp_path: Path) -> None:
    readonly = make_file(tmp_path, "mp3", stem="readonly")
    os.chmod(readonly, 0o444)
    linked = make_file(tmp_path, "flac", stem="linked")
    os.link(linked, tmp_path / "second_name.flac")
    unsupported = tmp_path / "old.au"
    sf.write(unsupported, np.zeros(44100, np.float32) + 0.1, 44100)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    files = [readonly, linked, unsupported, corrupt]
    digests = {p: file_digest(p) for p in files}
    summary = run([(str(p), PREDICTION) for p in files], apply=True)
    reasons = dict(summary.skipped)
    assert "read-only" in reasons[str(readonly)]
    assert "hard links" in reasons[str(linked)]
    assert "format without tag support" in reasons[str(unsupported)]
    assert str(corrupt) in reasons and summary.changed == 0
    assert all(file_digest(p) == d for p, d in digests.items())


def test_file_changed_after_planning_is_left_alone(tmp_path: Path) -> None:
    path = make_file(tmp_path, "wav")
    plan = wt.plan_file(path, PREDICTION, OPTIONS)
    assert plan.changes
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    digest = file_digest(path)
    with pytest.raises(wt.LeftAlone, match="changed since"):
        wt.apply_plan(plan, wt.Journal(tmp_path / "j.jsonl"))
    assert file_digest(path) == digest and not (tmp_path / "j.jsonl").exists()


def test_symlink_stays_a_symlink_and_touch_moves_mtime(tmp_path: Path) -> None:
    target = make_file(tmp_path, "m4a")
    link = tmp_path / "link.m4a"
    link.symlink_to(target)
    mtime = target.stat().st_mtime_ns
    touch = wt.WriteOptions(**{**OPTIONS.__dict__, "touch": True})
    assert run([(str(link), PREDICTION)], apply=True, options=touch).changed == 1
    assert link.is_symlink() and read_field(target, "©gen") == ["Rock"]
    assert target.stat().st_mtime_ns != mtime


def test_journal_records_exact_old_values_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = make_file(tmp_path, "mp3_v23")
    journal = tmp_path / "j.jsonl"
    run([(str(path), PREDICTION)], apply=True, journal=journal)
    with open(journal, "a") as f:
        f.write('{"file": "/x", "chan')  # what a kill mid-write leaves
    records, warnings = wt.read_journal(journal)
    assert len(records) == 1 and len(warnings) == 1
    (record,) = records
    assert record["file"] == str(path.resolve())
    fields = {c["field"]: c for c in record["changes"]}
    assert fields["TXXX:MOOD"]["old"] is None and fields["TXXX:MOOD"]["new"]["text"] == ["Happy"]
    assert all(json.dumps(c) for c in record["changes"])


def test_results_files_jsonl_and_csv(tmp_path: Path) -> None:
    song = make_file(tmp_path, "flac", stem="song")
    jsonl = tmp_path / "r.jsonl"
    # relative to the results file; the torn last line of a killed predict_clip run is ignored
    jsonl.write_text(json.dumps({"path": "song.flac", **PREDICTION}) + '\n{"path": "x.fl')
    csv_file = tmp_path / "r.csv"
    csv_file.write_text(
        "path,start,duration,windows,genre,genre_probability,mood,mood_probability,energy,tempo,"
        "genre:rock,genre:pop,mood:happy\n"
        f"{song},0,1.5,1,rock,0.91,happy,0.72,0.712,121.6,0.91,0.05,0.72\n"
    )
    for results in (jsonl, csv_file):
        items, total = wt.predictions_from_results(results, tmp_path)
        assert total == 1 and items[0][0] == str(song)
        plan = wt.plan_file(items[0][0], items[0][1], OPTIONS)
        new = {c.key: c.new for c in plan.changes}
        assert new["GENRE"] == {"values": ["Rock"]} and new["BPM"] == {"values": ["122"]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not JSON"):
        wt.predictions_from_results(bad, None)


def test_stale_temp_files_are_cleared(tmp_path: Path) -> None:
    path = make_file(tmp_path, "ogg", stem="song")
    stale = tmp_path / ".song.99999.tmp.ogg"
    shutil.copy(path, stale)
    run([(str(path), PREDICTION)], apply=True)
    assert not stale.exists()


def test_overwritten_vorbis_comments_come_back_in_order(tmp_path: Path) -> None:
    path = make_file(tmp_path, "flac")
    tags = open_tags(path)
    for key, value in (("title", "x"), ("Genre", USER_GENRE), ("Genre", "Bebop"), ("artist", "y")):
        list.append(tags.audio.tags, (key, value))
    tags.save(path)
    view = mutagen_view(path)
    journal = tmp_path / "j.jsonl"
    overwrite = wt.WriteOptions(**{**OPTIONS.__dict__, "overwrite": True})
    run([(str(path), PREDICTION)], apply=True, journal=journal, options=overwrite)
    assert read_field(path, "GENRE") == ["Rock"]
    wt.run_undo(journal, apply=True, out=io.StringIO(), progress=False)
    assert mutagen_view(path) == view
