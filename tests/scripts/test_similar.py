"""scripts/similar.py end to end: index a folder, update it, query songs in and out of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.synthetic import render_clip
from scripts.similar import main


def test_index_then_query(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    music = tmp_path / "music"
    music.mkdir()
    for i, (genre, mood) in enumerate([("rock", "happy"), ("folk", "calm"), ("jazz", "sad")]):
        x, _ = render_clip(genre, mood, 3.0, 22050, np.random.default_rng(i))
        sf.write(music / f"{genre}.flac", x, 22050)
    index = tmp_path / "library.index"
    args = ["index", str(music), "--out", str(index), "--checkpoint", str(trained_checkpoint)]
    demo = "note: this model was trained only on the synthetic demo set"
    assert main([*args, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "embedded 3 file(s), kept 0" in err and demo in err
    assert main([*args, "--no-progress"]) == 0
    assert "embedded 0 file(s), kept 3" in capsys.readouterr().err

    query = ["query", str(music / "rock.flac"), "--index", str(index), "--k", "2"]
    assert main([*query, "--m3u", str(tmp_path / "like_rock")]) == 0  # no suffix: .m3u8
    out, err = capsys.readouterr()
    assert out.startswith(f"songs like {music / 'rock.flac'}:") and out.count(str(music)) == 3
    assert demo in err  # answered from the index, no model loaded: the index recorded it
    lines = (tmp_path / "like_rock.m3u8").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 7  # the seed song first, then two more
    assert lines[1:3] == ["#EXTINF:3,rock", "music/rock.flac"]  # 3.0 s, no tags: its name
    assert all(line.startswith("#EXTINF:3,") for line in lines[3::2])

    assert main([*query, "--m3u", str(tmp_path / "like.m3u"), "--no-seed"]) == 0
    err = capsys.readouterr().err
    assert "written as UTF-8" in err
    lines = (tmp_path / "like.m3u").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and "music/rock.flac" not in lines
    with pytest.raises(SystemExit):
        main([*query, "--m3u", str(tmp_path / "like.pls")])
    assert "--m3u" in capsys.readouterr().err and not (tmp_path / "like.pls").exists()

    outside = tmp_path / "elsewhere.flac"  # not in the index: embedded with the index's model
    shutil.copy(music / "jazz.flac", outside)
    assert main(["query", str(outside), "--index", str(index), "--k", "1"]) == 0
    assert f"{(music / 'jazz.flac').resolve()}" in capsys.readouterr().out

    assert main(["query", str(outside), "--index", str(tmp_path / "none.index")]) == 2
    assert "error:" in capsys.readouterr().err


def test_help_names_the_shipped_model_as_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["index", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: the shipped model (lightning_module/shipped/)" in help_text
    assert "best*.ckpt" not in help_text


def test_path_writes_a_playlist_from_a_to_b(tmp_path: Path, capsys) -> None:
    from lightning_module.commands.main import main as audiotagger
    from tests.lightning_module.library.tiny_index import write_tiny_index

    def one_second(path: Path) -> None:
        sf.write(path, np.zeros(22050, np.float32), 22050)

    music, index = tmp_path / "music", tmp_path / "library.index"
    write_tiny_index(music, index, 30, make_file=one_second)
    start, end = music / "album0" / "song002.wav", music / "album1" / "song016.wav"
    args = ["path", str(start), str(end), "--index", str(index), "--count", "6"]
    assert main([*args, "--m3u", str(tmp_path / "walk")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"path from {start} to {end}, 6 songs:") and "largest" in out
    lines = (tmp_path / "walk.m3u8").read_text(encoding="utf-8").splitlines()
    songs = lines[2::2]
    assert lines[0] == "#EXTM3U" and lines[1] == "#EXTINF:1,song002" and len(songs) == 6
    assert songs[0] == "music/album0/song002.wav" and songs[-1] == "music/album1/song016.wav"
    assert len(set(songs)) == 6 and "wrote" in err

    # the same through `audiotagger similar path`; and bad requests are one-line errors
    assert audiotagger(["similar", *args]) == 0
    assert capsys.readouterr().out == out
    assert main(["path", str(start), str(start), "--index", str(index)]) == 2
    assert "two different songs" in capsys.readouterr().err
    assert main(["path", str(start), str(tmp_path / "x.wav"), "--index", str(index)]) == 2
    assert "x.wav: not in the index" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-2], "--count", "1"])
    assert "--count must be at least 2" in capsys.readouterr().err
