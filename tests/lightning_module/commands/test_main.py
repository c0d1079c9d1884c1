"""`audiotagger <command>`: each subcommand is the very main(argv) of its script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.synthetic import render_clip
from lightning_module.commands.main import SUBCOMMANDS, main
from scripts.predict_clip import main as predict_main


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples, _ = render_clip("jazz", "calm", 5.0, 22050, np.random.default_rng(4))
    path = tmp_path_factory.mktemp("song") / "song.flac"
    sf.write(path, samples, 22050)
    return path


def test_help_lists_every_command(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"  {name} " in out


def test_no_command_or_an_unknown_one_is_a_usage_error(capsys) -> None:
    assert main([]) == 2
    assert main(["tga", "song.mp3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'tga'")


def test_tag_is_predict_clip(trained_checkpoint: Path, song: Path, capsys) -> None:
    args = [str(song), "--checkpoint", str(trained_checkpoint), "--json"]
    assert main(["tag", *args]) == 0
    via_command = json.loads(capsys.readouterr().out)
    assert predict_main(args) == 0
    assert via_command == json.loads(capsys.readouterr().out)


def test_subcommand_errors_keep_their_exit_codes(song: Path, capsys) -> None:
    assert main(["tag", str(song), "--checkpoint", str(song)]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
