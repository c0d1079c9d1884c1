"""The beets plugin against the real beets package: a temporary library (``BEETSDIR``), tiny
generated files imported with ``beet import -A``, the plugin run as ``beet`` subprocesses, and
the fields read back through ``beet ls`` and with mutagen from the files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("beets")
mutagen = pytest.importorskip("mutagen")

from lightning_module.beets_plugin.fields import genre_label  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402

BEET = Path(sys.executable).parent / "beet"
_SHIPPED = json.loads((REPO_ROOT / "lightning_module/shipped/model.json").read_text())
MODEL_ID = f"{_SHIPPED['id']}@{_SHIPPED['version']}"  # the shipped model
FIELDS = ("path", "title", "bpm", "mood", "genres", "initial_key", "audiotagger_energy",
          "audiotagger_tempo", "audiotagger_model", "audiotagger_genre_tags")  # fmt: skip


def beet(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``beet`` of this venv on the library in ``home``, with this checkout's plugin."""
    env = {
        **os.environ,
        "BEETSDIR": str(home),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [str(BEET), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"beet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def listing(home: Path, *query: str) -> dict[str, dict[str, str]]:
    """``beet ls -f`` of :data:`FIELDS`, by file name."""
    fmt = "\t".join(f"${f}" for f in FIELDS)
    out = beet(home, "ls", "-f", fmt, *query).stdout
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines()]
    return {Path(row["path"]).name.split(" ", 1)[-1]: row for row in rows}


def make_library(home: Path, config: str = "") -> Path:
    """A beets home with a config and three tiny songs (3 s, 16 kHz) to import, tagged as a
    user left them: a flac with BPM 99 and mood Calm, an mp3 with two genres, a bare wav."""
    (home / "config.yaml").write_text(
        f"directory: {home / 'music'}\nlibrary: {home / 'library.db'}\nplugins: audiotagger\n"
        "import:\n  copy: yes\n  write: yes\n"
        # genre/mood whatever the certainty, so the test knows what to expect
        "audiotagger:\n  min_probability: 0.0\n" + config,
        encoding="utf-8",
    )
    src = home / "src"
    src.mkdir()
    sr, t = 16000, np.arange(3 * 16000) / 16000
    for i, name in enumerate(("wave.wav", "flac.flac", "mp3.mp3")):
        rng = np.random.default_rng(i)
        beat = (np.sin(2 * np.pi * (1.5 + i) * t) > 0.9).astype(float)
        x = 0.3 * np.sin(2 * np.pi * (180 + 140 * i) * t) * (0.3 + beat) + 0.03 * rng.normal(
            size=t.size
        )
        sf.write(src / name, x.astype(np.float32), sr)
    wav = mutagen.File(src / "wave.wav")
    wav.add_tags()
    wav.tags.add(mutagen.id3.TIT2(encoding=3, text="wave"))
    wav.save()
    flac = mutagen.File(src / "flac.flac")
    flac.update({"title": "flac", "bpm": "99", "mood": "Calm"})
    flac.save()
    mp3 = mutagen.File(src / "mp3.mp3")
    mp3.add_tags()
    mp3.tags.add(mutagen.id3.TIT2(encoding=3, text="mp3"))
    mp3.tags.add(mutagen.id3.TCON(encoding=3, text=["Post-Rock", "Shoegaze"]))
    mp3.save()
    return src


def library_file(home: Path, name: str) -> Path:
    return next((home / "music").rglob(f"*{name}"))


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """A library imported with ``beet import -A``, tagged with ``beet audiotag``: its home, what
    the run printed, and ``beet ls`` of it afterwards (few ``beet`` runs: each costs ~1 s)."""
    home = tmp_path_factory.mktemp("beets")
    beet(home, "import", "-A", "-q", str(make_library(home)))
    return home, beet(home, "audiotag").stdout, listing(home)


pytestmark = pytest.mark.slow


def test_audiotag_fills_beets_fields_and_files(tagged) -> None:
    home, printed, rows = tagged
    assert "tagged 3 item(s)" in printed and "kept the user's" in printed
    assert sorted(rows) == ["flac.flac", "mp3.mp3", "wave.wav"]
    for row in rows.values():
        assert row["audiotagger_model"] == MODEL_ID
        assert 0.0 <= float(row["audiotagger_energy"]) <= 1.0
    wave, flac, mp3 = rows["wave.wav"], rows["flac.flac"], rows["mp3.mp3"]
    # BPM: the model's tempo, rounded, where the user had none; the user's 99 and Calm survive
    assert int(wave["bpm"]) == round(float(wave["audiotagger_tempo"])) > 0
    assert (flac["bpm"], flac["mood"]) == ("99", "Calm")
    assert mp3["genres"] == "Post-Rock; Shoegaze"  # the user's multi-value genre, not flattened
    assert wave["mood"] and wave["genres"] in {genre_label(g) for g in _SHIPPED["genres"]}
    # The shipped model's key head, in beets' own spelling (a tonic, "m" for minor)
    assert wave["initial_key"][:1] in "ABCDEFG" and len(wave["initial_key"]) <= 3

    # ... and the files, as beets' write path left them (read with mutagen)
    wav = mutagen.File(library_file(home, "wave.wav")).tags
    assert str(wav["TBPM"]) == wave["bpm"] and str(wav["TMOO"]) == wave["mood"]
    assert str(wav["TCON"]) == wave["genres"]
    assert str(wav["TXXX:AUDIOTAGGER_ENERGY"]) == f"{float(wave['audiotagger_energy']):.3f}"
    assert str(wav["TXXX:AUDIOTAGGER_MODEL"]) == MODEL_ID
    fl = mutagen.File(library_file(home, "flac.flac"))
    assert fl["bpm"] == ["99"] and fl["mood"] == ["Calm"]
    assert fl["audiotagger_tempo"] == [f"{float(flac['audiotagger_tempo']):.1f}"]
    mp = mutagen.File(library_file(home, "mp3.mp3")).tags
    assert list(mp["TCON"].text) == ["Post-Rock", "Shoegaze"]
    assert str(mp["TBPM"]) == mp3["bpm"] and str(mp["TMOO"]) == mp3["mood"]


def test_range_queries_compare_numbers(tagged) -> None:
    home, _, rows = tagged
    energy = {name: float(row["audiotagger_energy"]) for name, row in rows.items()}
    bpm = {name: int(row["bpm"]) for name, row in rows.items()}
    # thresholds from the values, so that each part of the query rules out some item
    low = sorted(energy.values())[1] - 0.0005
    lo, hi = min(bpm.values()), sorted(bpm.values())[1]
    wanted = {n for n in rows if energy[n] >= low and lo <= bpm[n] <= hi}
    # float attributes (item_types): a range, not a substring match of "0.8.."
    found = listing(home, f"audiotagger_energy:{low:.4f}..", f"bpm:{lo}..{hi}")
    assert set(found) == wanted


def test_a_second_run_changes_nothing(tagged) -> None:
    home, _, rows = tagged
    files = sorted((home / "music").rglob("*.*"))

    def state() -> list:
        return [
            (p, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files
        ]

    before = state()
    again = beet(home, "audiotag")
    assert "tagged 0 item(s)" in again.stdout and "already tagged by this model 3" in again.stdout
    assert state() == before
    assert listing(home) == rows


def test_audiosimilar_lists_the_other_items(tagged) -> None:
    home, _, _ = tagged
    out = beet(home, "audiosimilar", "title:wave", "-n", "2", "-f", "$title").stdout
    lines = out.splitlines()
    assert lines[0].startswith("like wave")
    assert sorted(line.split()[-1] for line in lines[1:]) == ["flac", "mp3"]
    distances = [float(line.split()[0]) for line in lines[1:]]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    assert (home / "audiotagger" / "similarity.npz").is_file()  # under beets' config dir


def test_import_hook_force_and_a_vanished_file(tmp_path: Path) -> None:
    home = tmp_path
    beet(home, "import", "-A", "-q", str(make_library(home, "  auto: yes\n")))
    for name in ("wave.wav", "mp3.mp3"):  # the import hook tagged, beets' import wrote
        assert (
            str(mutagen.File(library_file(home, name)).tags["TXXX:AUDIOTAGGER_MODEL"]) == MODEL_ID
        )
    assert mutagen.File(library_file(home, "flac.flac"))["bpm"] == ["99"]

    gone = library_file(home, "mp3.mp3")
    gone.unlink()
    run = beet(home, "audiotag", "--force")
    problems = [line for line in run.stderr.splitlines() if line.strip()]
    assert problems == [f"audiotagger: skipped: {gone}: file not found"]
    assert "tagged 1 item(s), unchanged 1, skipped 1" in run.stdout  # only the flac changed
    after = listing(home)
    mp3 = after["mp3.mp3"]  # nothing of the vanished item is lost
    assert mp3["audiotagger_model"] == MODEL_ID and mp3["genres"] == "Post-Rock; Shoegaze"
    assert int(mp3["bpm"]) == round(float(mp3["audiotagger_tempo"]))
    flac = after["flac.flac"]  # --force replaces the user's BPM and mood
    assert int(flac["bpm"]) == round(float(flac["audiotagger_tempo"])) != 99
    assert mutagen.File(library_file(home, "flac.flac"))["bpm"] == [flac["bpm"]]
