"""scripts/similar.py end to end: index a folder, update it, query songs in and out of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
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
    assert main([*args, "--no-progress"]) == 0
    assert "embedded 3 file(s), kept 0" in capsys.readouterr().err
    assert main([*args, "--no-progress"]) == 0
    assert "embedded 0 file(s), kept 3" in capsys.readouterr().err

    m3u = tmp_path / "like_rock.m3u"
    assert main(["query", str(music / "rock.flac"), "--index", str(index), "--k", "2",
                 "--m3u", str(m3u)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(f"songs like {music / 'rock.flac'}:") and out.count(str(music)) == 3
    assert m3u.read_text().startswith("#EXTM3U\n") and len(m3u.read_text().splitlines()) == 5

    outside = tmp_path / "elsewhere.flac"  # not in the index: embedded with the index's model
    shutil.copy(music / "jazz.flac", outside)
    assert main(["query", str(outside), "--index", str(index), "--k", "1"]) == 0
    assert f"{(music / 'jazz.flac').resolve()}" in capsys.readouterr().out

    assert main(["query", str(outside), "--index", str(tmp_path / "none.index")]) == 2
    assert "error:" in capsys.readouterr().err
