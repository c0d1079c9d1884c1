"""What goes into which field: the key (apply and undo in every family), --fields subsets, the
genre modes with a user's multi-value genre, genre tags as GENRE/STYLE/grouping, the tag
head's tags, provenance, and BPM as an integer beside the exact tempo."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path

import pytest

from lightning_module.inference.shipped import shipped_info, shipped_onnx
from lightning_module.library import write_tags as wt
from lightning_module.library.musical_key import MusicalKey, key_of
from lightning_module.library.tag_fields import PREFIX, open_tags
from lightning_module.library.tag_values import parse_fields
from tests.lightning_module.library.formats import make_file, mutagen_view, read_field

BASE = {
    "genre": [{"label": "rock", "probability": 0.91}],
    "mood": [{"label": "happy", "probability": 0.72}],
    "features": {"energy": 0.71234, "tempo": 121.637},
    "genre_tags": {"Pop/Rock": 0.81, "Electronic": 0.62, "Jazz": 0.2},
    "tags": [{"label": "guitar", "probability": 0.7}, {"label": "piano", "probability": 0.1}],
}
KEYED = {**BASE, "key": "Eb", "mode": "minor", "key_confidence": 0.8125, "camelot": "2A"}
OPTIONS = wt.WriteOptions(model="audiotagger-student@1.0.0", version="audiotagger test")
#: the key field, in each kind of file
KEY_FIELD = {
    "mp3": "TKEY",
    "mp3_v23": "TKEY",
    "flac": "INITIALKEY",
    "ogg": "INITIALKEY",
    "m4a": "----:com.apple.iTunes:initialkey",
}
GENRE_FIELD = {"mp3_v24": "TCON", "mp3_v23": "TCON", "flac": "GENRE", "m4a": "©gen"}


def run(items, options=OPTIONS, journal: Path | None = None) -> wt.Summary:
    out = io.StringIO()
    with wt.Journal(journal or Path(tempfile.mkdtemp()) / "journal.jsonl") as j:
        summary = wt.run_library(items, options, True, j, out, progress=False)
    assert not summary.failed and not summary.skipped, out.getvalue()
    return summary


def opts(**changes) -> wt.WriteOptions:
    return wt.WriteOptions(**{**OPTIONS.__dict__, "verify": "packets", **changes})


def own(path: Path, name: str) -> list[str]:
    tags = open_tags(path)
    return wt.value_texts(tags.read(tags.key(name)))


def test_key_notation_and_checks() -> None:
    assert MusicalKey("A", "minor").standard == "Am" and MusicalKey("A", "minor").camelot == "8A"
    assert MusicalKey("C", "major").camelot == "8B" and MusicalKey("F#", "minor").camelot == "11A"
    assert MusicalKey("Eb", "minor").notation("standard") == "Ebm"
    assert key_of({"key": "Db", "mode": "Major"}) == MusicalKey("C#", "major")  # enharmonic
    assert key_of({"key": "C#", "mode": "major"}).camelot == "3B"
    assert key_of({"key": "", "mode": ""}) is None and key_of({}) is None  # empty CSV cells
    for record, field in (
        ({"key": "A"}, "'mode'"),
        ({"key": "H", "mode": "minor"}, "'key'"),
        ({"key": "A", "mode": "dorian"}, "'mode'"),
        ({"key": "A", "mode": "minor", "key_confidence": 1.5}, "'key_confidence'"),
        ({"key": "A", "mode": "minor", "camelot": "8B"}, "'camelot'"),
    ):
        with pytest.raises(ValueError, match=field):
            key_of(record)


def test_key_round_trips_through_apply_and_undo(tmp_path: Path) -> None:
    """From results files with key columns (JSON lines and CSV), into every family, and back."""
    files = {kind: make_file(tmp_path, kind, seed=i) for i, kind in enumerate(KEY_FIELD)}
    views = {kind: mutagen_view(p) for kind, p in files.items()}
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"path": str(files[k]), **KEYED}) + "\n" for k in ("mp3", "flac"))
    )
    csv_file = tmp_path / "r.csv"
    header = "path,genre,genre_probability,energy,tempo,key,mode,key_confidence,camelot\n"
    rows = "".join(f"{files[k]},rock,0.9,0.5,121.6,Eb,minor,0.8125,2A\n" for k in files)
    csv_file.write_text(header + rows)
    journal = tmp_path / "j.jsonl"
    items, _ = wt.predictions_from_results(jsonl, None)
    run(items, opts(), journal)
    items, _ = wt.predictions_from_results(csv_file, None)
    run(items, opts(key_notation="camelot"), journal)  # a second run: camelot notation
    for kind, path in files.items():
        assert read_field(path, KEY_FIELD[kind]) == ["2A"], kind
        assert own(path, "camelot") == ["2A"] and own(path, "key_confidence") == ["0.812"]
    # standard notation, as ID3's TKEY defines it, from the first run (CSV-only files: undo)
    out = io.StringIO()
    undone = wt.run_undo(journal, apply=True, out=out, progress=False, verify="packets")
    assert undone.changed == len(files) and not undone.failed and not undone.kept, out.getvalue()
    for kind, path in files.items():
        assert mutagen_view(path) == views[kind], f"{kind}: tags not restored byte for byte"

    run(wt.predictions_from_results(jsonl, None)[0], opts())
    assert read_field(files["mp3"], "TKEY") == ["Ebm"]
    assert read_field(files["flac"], "INITIALKEY") == ["Ebm"]


def test_a_malformed_key_in_results_names_file_line_and_field(tmp_path: Path) -> None:
    song = make_file(tmp_path, "flac")
    bad = tmp_path / "r.csv"
    bad.write_text(f"path,genre,genre_probability,key,mode\n{song},rock,0.9,Eb,lydian\n")
    with pytest.raises(ValueError, match=r"r\.csv:2: field 'mode'"):
        wt.predictions_from_results(bad, None)


def test_fields_subset_leaves_the_rest_and_keeps_its_provenance(tmp_path: Path) -> None:
    path = make_file(tmp_path, "flac")
    run([(str(path), BASE)], opts(model="first@1"))
    before = {k: v for k, v in mutagen_view(path) if "MODEL" not in k and "WRITTEN" not in k}
    later = {**KEYED, "mood": [{"label": "sad", "probability": 0.9}]}
    later["features"] = {"energy": 0.1, "tempo": 90.0}
    run([(str(path), later)], opts(model="second@2", fields=parse_fields("bpm,key")))
    assert read_field(path, "BPM") == ["90"] and read_field(path, "INITIALKEY") == ["Ebm"]
    assert own(path, "tempo") == ["90.00"]
    after = dict(mutagen_view(path))
    for key in ("MOOD", "GENRE", f"{PREFIX}ENERGY", f"{PREFIX}GENRE_TAGS", f"{PREFIX}TAGS"):
        assert after[key] == before[key], f"{key} changed though not selected"
    assert own(path, "model") == ["second@2", "first@1"]
    models = json.loads(own(path, "written")[0])["models"]
    assert sorted(models["second@2"]) == ["bpm", "camelot", "key", "key_confidence", "tempo"]
    assert {"genre", "mood", "energy", "genre_tags", "tags"} <= set(models["first@1"])
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        parse_fields("bpm,colour")


def test_genre_mode_append_keeps_the_users_values_apart(tmp_path: Path) -> None:
    files = {kind: make_file(tmp_path, kind.removesuffix("_v24"), i, stem=kind) for i, kind in
             enumerate(GENRE_FIELD)}  # fmt: skip
    for kind, path in files.items():
        tags = open_tags(path)
        key = GENRE_FIELD[kind]
        tags.write(key, tags.make(key, ["Post-Rock", "Shoegaze"]))  # v2.3: "Post-Rock; Shoegaze"
        tags.save(path)
    views = {kind: mutagen_view(p) for kind, p in files.items()}
    journal = tmp_path / "j.jsonl"
    items = [(str(p), BASE) for p in files.values()]
    run(items, opts(genre_mode="append"), journal)
    ours = ["Rock", "Pop/Rock", "Electronic"]
    for kind, path in files.items():
        expected = ["Post-Rock", "Shoegaze", *ours]
        if kind == "mp3_v23":  # one text, as ID3v2.3 holds several values
            expected = ["; ".join(expected)]
        assert read_field(path, GENRE_FIELD[kind]) == expected, kind
    assert run(items, opts(genre_mode="append"), journal).changed == 0  # nothing twice
    assert run(items, opts(), journal).kept == len(files)  # keep: the field is not only ours
    run(items, opts(genre_mode="replace"), journal)
    assert read_field(files["flac"], "GENRE") == ours
    assert run(items, opts(genre_mode="append"), journal).changed == len(files)
    assert read_field(files["flac"], "GENRE") == ours  # ours again; the user's were replaced
    for path in files.values():  # every value is known as ours (v2.3 too, split again)
        assert json.loads(own(path, "written")[0])["fields"]["genre"] == ours
    wt.run_undo(journal, apply=True, out=io.StringIO(), progress=False, verify="packets")
    assert all(mutagen_view(p) == views[k] for k, p in files.items())


@pytest.mark.parametrize(
    ("target", "fields"),
    [("style", ("TXXX:STYLE", "STYLE")), ("grouping", ("GRP1", "GROUPING"))],
)
def test_genre_tags_as_style_or_grouping(tmp_path: Path, target: str, fields) -> None:
    mp3, flac = make_file(tmp_path, "mp3"), make_file(tmp_path, "flac")
    m4a = make_file(tmp_path, "m4a")
    run([(str(p), BASE) for p in (mp3, flac, m4a)], opts(genre_tags_to=target))
    for path, key in zip((mp3, flac), fields, strict=True):
        assert read_field(path, key) == ["Pop/Rock", "Electronic"]
    m4a_key = "©grp" if target == "grouping" else "----:com.apple.iTunes:STYLE"
    assert read_field(m4a, m4a_key) == ["Pop/Rock", "Electronic"]
    assert read_field(flac, "GENRE") == ["Rock"]
    assert own(flac, "genre_tags") == ["Pop/Rock", "Electronic"]  # above 0.5 only
    assert own(flac, "tags") == ["guitar"]


def test_bpm_is_an_integer_and_the_exact_tempo_is_ours(tmp_path: Path) -> None:
    mp3, m4a = make_file(tmp_path, "mp3"), make_file(tmp_path, "m4a")
    run([(str(mp3), BASE), (str(m4a), BASE)], opts())
    assert read_field(mp3, "TBPM") == ["122"] and read_field(m4a, "tmpo") == ["122"]
    assert read_field(mp3, f"TXXX:{PREFIX}TEMPO") == ["121.64"]


def test_provenance_names_the_model(tmp_path: Path) -> None:
    shipped_id = f"{shipped_info().id}@{shipped_info().version}"  # audiotagger-student@1.1.0
    assert wt.model_id_of(shipped_onnx()) == shipped_id
    demo = tmp_path / "demo.ckpt"
    demo.write_bytes(b"weights")
    assert wt.model_id_of(demo, synthetic_only=True) == (
        f"demo.ckpt sha256:{hashlib.sha256(b'weights').hexdigest()[:12]} (synthetic demo)"
    )
    # a results file of a library run: its state names the model by hash
    results = tmp_path / "r.jsonl"
    results.write_text("")
    state = {"model": {"path": "/x/model.onnx", "sha256": shipped_info().files["model.onnx"]}}
    Path(str(results) + ".state.json").write_text(json.dumps(state))
    assert wt.results_model_id(results) == shipped_id
    path = make_file(tmp_path, "ogg")
    run([(str(path), BASE)], opts(model=wt.model_id_of(demo, True)))
    assert own(path, "model") == [wt.model_id_of(demo, True)]
