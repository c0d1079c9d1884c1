"""scripts/write_tags.py end to end: the model's answers into the files (dry run first), from a
results file, undo, read-only files, and SIGKILL at random moments of --apply (a real process)."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_module.library import write_tags as wt
from lightning_module.library.tag_fields import PREFIX, open_tags
from lightning_module.library.tag_values import GENRE_TAG_THRESHOLD, TAG_THRESHOLD
from scripts.predict_clip import main as predict_main
from scripts.write_tags import main
from tests.conftest import REPO_ROOT
from tests.lightning_module.library.formats import (
    UNDO_GROWTH,
    file_digest,
    make_file,
    mutagen_view,
    read_field,
)

KINDS = ("mp3", "flac", "m4a", "ogg", "wav")


def make_folder(folder: Path, n: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_file(folder, KINDS[i % len(KINDS)], seed=i, stem=f"song{i:03d}") for i in range(n)]


def own(path: Path, name: str) -> list[str]:
    tags = open_tags(path)
    return [str(v) for v in wt.value_texts(tags.read(tags.key(name)))]


def test_model_dry_run_apply_idempotent_undo(
    trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    files = make_folder(tmp_path / "music", 3)
    state = {p: (file_digest(p), p.stat().st_mtime_ns) for p in files}
    views = {p: mutagen_view(p) for p in files}
    journal = tmp_path / "journal.jsonl"
    common = ["--checkpoint", str(trained_checkpoint), "--journal", str(journal), "--no-progress"]
    common += ["--min-probability", "0"]  # the tiny test model is never sure

    assert main([str(tmp_path / "music"), *common]) == 0
    out, err = capsys.readouterr()
    assert out.count("would change:") == 3 and "dry run" in err and "→" in out
    assert all((file_digest(p), p.stat().st_mtime_ns) == state[p] for p in files)
    assert not journal.exists()

    assert main([str(tmp_path / "music"), *common, "--apply", "--allow-demo-model"]) == 0
    out, err = capsys.readouterr()
    assert "changed 3 file(s)" in err and "--undo" in err
    for p in files:
        assert own(p, "model")[0].startswith(trained_checkpoint.name + " sha256:")
        assert own(p, "genre") and own(p, "mood")
        assert p.stat().st_mtime_ns == state[p][1]

    # a second run: nothing
    assert main([str(tmp_path / "music"), *common, "--apply", "--allow-demo-model"]) == 0
    out, err = capsys.readouterr()
    assert "changed 0 file(s)" in err and "unchanged 3" in err

    assert main(["--undo", str(journal), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "restored 3 file(s)" in err
    assert all(mutagen_view(p) == views[p] for p in files)


def test_demo_model_is_named_and_apply_refuses_it(
    trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """The test model learned from the synthetic demo set only: every run says so, and --apply
    writes nothing with it (one-line error, exit 2) unless --allow-demo-model."""
    files = make_folder(tmp_path / "music", 2)
    state = {p: file_digest(p) for p in files}
    journal = tmp_path / "journal.jsonl"
    common = [str(tmp_path / "music"), "--checkpoint", str(trained_checkpoint), "--no-progress"]
    common += ["--journal", str(journal), "--min-probability", "0"]
    note = "note: this model was trained only on the synthetic demo set"

    assert main(common) == 0  # a dry run shows what it would write, and the note
    out, err = capsys.readouterr()
    assert note in err and out.count("would change:") == 2

    assert main([*common, "--apply"]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(trained_checkpoint) in errors[0], err
    assert "--allow-demo-model" in errors[0] and note in err and not out
    assert all(file_digest(p) == d for p, d in state.items()) and not journal.exists()

    assert main([*common, "--apply", "--allow-demo-model"]) == 0
    out, err = capsys.readouterr()
    assert note in err and "changed 2 file(s)" in err


def test_help_names_the_shipped_model_as_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: the shipped model (lightning_module/shipped/)" in help_text
    assert "best*.ckpt" not in help_text


def test_from_results_jsonl_and_csv(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    make_folder(tmp_path / "music", 2)
    for fmt in ("jsonl", "csv"):
        results = tmp_path / f"results.{fmt}"
        args = [str(tmp_path / "music"), "--checkpoint", str(trained_checkpoint)]
        assert predict_main([*args, "--out", str(results)]) == 0
        capsys.readouterr()
        journal = tmp_path / f"{fmt}.journal.jsonl"
        code = main(
            ["--from-results", str(results), "--apply", "--journal", str(journal), "--no-progress"]
        )
        assert code == 0
        assert "changed 2 file(s)" in capsys.readouterr().err
        rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
        for row in rows:
            path = Path(row["path"])
            for name, value in row["features"].items():  # every predicted feature, no other
                assert own(path, name) == [wt.feature_text(name, value)], (fmt, name)
            names = {k.upper() for k, _ in mutagen_view(path) if PREFIX in k.upper()}
            expected = {name.upper() for name in row["features"]} | {"MODEL", "VERSION", "WRITTEN"}
            if any(p >= GENRE_TAG_THRESHOLD for p in (row.get("genre_tags") or {}).values()):
                expected.add("GENRE_TAGS")
            if any(t["probability"] >= TAG_THRESHOLD for t in row.get("tags") or []):
                expected.add("TAGS")
            assert {n.rsplit(PREFIX, 1)[1] for n in names} == expected
            if "tempo" in row["features"]:
                bpm = open_tags(path).key("bpm")
                assert read_field(path, bpm) == [str(round(row["features"]["tempo"]))]
        assert main(["--undo", str(journal), "--no-progress"]) == 0
        capsys.readouterr()


def test_read_only_and_unusable_files_are_reported(tmp_path: Path, capsys) -> None:
    files = make_folder(tmp_path / "music", 2)
    os.chmod(files[0], 0o444)
    results = tmp_path / "r.jsonl"
    prediction = {"genre": [{"label": "rock", "probability": 0.9}], "mood": [], "features": {}}
    results.write_text("".join(json.dumps({"path": str(p), **prediction}) + "\n" for p in files))
    digest = file_digest(files[0])
    args = ["--from-results", str(results), "--apply", "--journal", str(tmp_path / "j.jsonl")]
    assert main([*args, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert f"skipped: {files[0]}: read-only file" in out and "changed 1 file(s)" in err
    assert file_digest(files[0]) == digest
    assert main(["--from-results", str(tmp_path / "missing.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_fields_key_from_results_apply_undo_and_one_line_errors(tmp_path: Path, capsys) -> None:
    """A CSV results file with the key columns: --fields key writes only the key (and our
    provenance), undo takes it back; results without a key say so in one line; an unknown
    field is a one-line error naming it."""
    files = make_folder(tmp_path / "music", 4)  # mp3, flac, m4a, ogg
    views = {p: mutagen_view(p) for p in files}
    keyed = tmp_path / "keyed.csv"
    keyed.write_text(
        "path,genre,genre_probability,tempo,key,mode,key_confidence,camelot\n"
        + "".join(f"{p},rock,0.9,120.0,F#,minor,0.6,11A\n" for p in files)
    )
    journal = tmp_path / "j.jsonl"
    args = ["--journal", str(journal), "--no-progress", "--verify", "packets"]
    assert main(["--from-results", str(keyed), "--fields", "key", "--apply", *args]) == 0
    out, err = capsys.readouterr()
    assert "changed 4 file(s)" in err
    for p in files:
        tags = open_tags(p)
        assert wt.value_texts(tags.read(tags.key("key"))) == ["F#m"]
        assert not wt.value_texts(tags.read(tags.key("genre"))), "genre written, not selected"
        assert not wt.value_texts(tags.read(tags.key("bpm")))
    assert main(["--undo", str(journal), "--no-progress"]) == 0
    assert "restored 4 file(s)" in capsys.readouterr().err
    assert all(mutagen_view(p) == views[p] for p in files)

    plain = tmp_path / "plain.csv"
    plain.write_text("path,genre,genre_probability\n" + "".join(f"{p},rock,0.9\n" for p in files))
    assert main(["--from-results", str(plain), "--fields", "key,bpm", *args]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "--fields key" in line]
    assert len(notes) == 1 and "no key was written" in notes[0], err

    assert main(["--from-results", str(plain), "--fields", "bpm,colour", *args]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "error: --fields: unknown field 'colour'" in err, err


def _classify(path: Path, original: Path, audio: str) -> str:
    if file_digest(path) == file_digest(original):
        return "original"
    tags = open_tags(path)
    for name in ("genre", "mood", "bpm", "energy", "model", "written"):
        assert wt.value_texts(tags.read(tags.key(name))), f"{path}: torn ({name} missing)"
    assert wt.audio_digest(path) == audio, f"{path}: audio damaged"
    return "tagged"


@pytest.mark.slow
def test_sigkill_during_apply_never_tears_a_file(tmp_path: Path) -> None:
    rng = random.Random(18)
    prediction = {
        "genre": [{"label": "rock", "probability": 0.9}],
        "mood": [{"label": "happy", "probability": 0.8}],
        "features": {"energy": 0.5, "tempo": 120.0},
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    outcomes = []
    for attempt in range(3):
        work = tmp_path / f"run{attempt}"
        files = make_folder(work / "music", 40)
        backup = work / "backup"
        shutil.copytree(work / "music", backup)
        audio = {p.name: wt.audio_digest(p) for p in files}
        views = {p.name: mutagen_view(p) for p in files}
        results = work / "r.jsonl"
        results.write_text(
            "".join(json.dumps({"path": str(p), **prediction}) + "\n" for p in files)
        )
        journal = work / "j.jsonl"
        command = [sys.executable, str(REPO_ROOT / "scripts" / "write_tags.py")]
        command += ["--from-results", str(results), "--apply", "--journal", str(journal)]
        command += ["--no-progress", "--verify", "packets"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first file is written: kill somewhere after it
        assert line.startswith(b"changed:"), line
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

        states = {p.name: _classify(p, backup / p.name, audio[p.name]) for p in files}
        records, warnings = wt.read_journal(journal)
        assert len(warnings) <= 1  # at most the torn last line
        journaled = {Path(r["file"]).name for r in records}
        tagged = {name for name, s in states.items() if s == "tagged"}
        assert tagged <= journaled, "a file was renamed before its journal line was on disk"
        leftovers = [p.name for p in (work / "music").iterdir() if p.name.startswith(".")]
        assert len(leftovers) <= 1 and all(".tmp." in name for name in leftovers)
        outcomes.append(len(tagged))

        # resume: the rest gets written, the stale temp file goes, nothing is written twice
        assert main(["--from-results", str(results), "--apply", "--journal", str(journal),
                     "--no-progress", "--verify", "packets"]) == 0  # fmt: skip
        assert all(_classify(p, backup / p.name, audio[p.name]) == "tagged" for p in files)
        assert not [p for p in (work / "music").iterdir() if p.name.startswith(".")]
        # and the journal undoes both runs exactly
        assert main(["--undo", str(journal), "--no-progress", "--verify", "packets"]) == 0
        assert all(mutagen_view(p) == views[p.name] for p in files)
    assert any(0 < n < 40 for n in outcomes), f"no kill landed mid-run: {outcomes}"


def _restored(path: Path, original: dict[str, tuple[bytes, list]]) -> bool:
    """The tags are the original's byte for byte, and so is the file (but for the documented
    empty padding block/atom of formats.UNDO_GROWTH)."""
    data, view = original[path.name]
    grown = UNDO_GROWTH.get(path.suffix[1:], 0)
    if mutagen_view(path) != view:
        return False
    return path.read_bytes() == data if not grown else path.stat().st_size == len(data) + grown


@pytest.mark.slow
def test_sigkill_during_undo_leaves_files_tagged_or_restored_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    """Two runs over the same files (a second model, then --overwrite), then an undo killed
    with SIGKILL at a random moment: each file is either as the runs left it or fully
    restored, and undo run again restores the rest, byte-identical where the format allows."""
    rng = random.Random(24)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    runs = [
        ({"genre": [{"label": "rock", "probability": 0.9}], "mood": [],
          "features": {"energy": 0.5, "tempo": 120.0}}, wt.WriteOptions(model="a")),
        ({"genre": [{"label": "jazz", "probability": 0.9}], "mood": [],
          "features": {"valence": 0.1}}, wt.WriteOptions(model="b", overwrite=True)),
    ]  # fmt: skip
    outcomes = []
    for attempt in range(2):
        work = tmp_path / f"run{attempt}"
        files = make_folder(work / "music", 40)
        original = {p.name: (p.read_bytes(), mutagen_view(p)) for p in files}
        journal = work / "j.jsonl"
        for prediction, options in runs:
            with wt.Journal(journal) as j:
                summary = wt.run_library([(str(p), prediction) for p in files], options, True, j,
                                         io.StringIO(), progress=False)  # fmt: skip
            assert summary.changed == 40 and not summary.failed
        tagged = {p.name: p.read_bytes() for p in files}

        command = [sys.executable, str(REPO_ROOT / "scripts" / "write_tags.py"), "--undo"]
        command += [str(journal), "--no-progress", "--verify", "packets"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first file is restored: kill somewhere after it
        assert line.startswith(b"changed:"), line
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

        states = {}
        for p in files:
            if p.read_bytes() == tagged[p.name]:
                states[p.name] = "untouched"
            else:
                assert _restored(p, original), f"{p.name}: neither as tagged nor restored"
                states[p.name] = "restored"
        outcomes.append(sum(s == "restored" for s in states.values()))

        assert main(["--undo", str(journal), "--no-progress", "--verify", "packets"]) == 0
        assert all(_restored(p, original) for p in files)
        assert not [p for p in (work / "music").iterdir() if p.name.startswith(".")]
    assert any(0 < n < 40 for n in outcomes), f"no kill landed mid-undo: {outcomes}"
