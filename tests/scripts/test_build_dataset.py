"""scripts/build_dataset.py: a source name or a YAML config, --set overrides, one-line errors."""

from __future__ import annotations

import pytest
import yaml

from datamodules.manifest import read_manifest
from datamodules.sources.base import from_mapping
from datamodules.sources.registry import get_builder
from scripts.build_dataset import main
from tests.conftest import REPO_ROOT, write_tone

SOURCE_CONFIGS = sorted((REPO_ROOT / "configs" / "sources").glob("*.yaml"))


@pytest.mark.parametrize("path", SOURCE_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_source_config_parses(path):
    config = yaml.safe_load(path.read_text())
    builder = get_builder(config.pop("source"))
    if not hasattr(builder, "config_class"):
        pytest.skip("source without a declared config class")
    from_mapping(builder.config_class, config, path.name)  # raises on unknown keys / bad values


def test_yaml_config_with_overrides_builds_a_manifest(tmp_path, capsys):
    for genre in ("pop", "rock"):
        (tmp_path / "music" / genre).mkdir(parents=True)
        for i in range(3):
            write_tone(tmp_path / "music" / genre / f"{i}.wav", seconds=1.2, sr=8000)
    config = tmp_path / "toy.yaml"
    config.write_text("source: folder\nname: toy\nroot: /nowhere\nsplit: {seed: 1}\n")
    code = main(
        [
            str(config),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--set",
            f"root={tmp_path / 'music'}",
            "--set",
            "split.val_fraction=0.34",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "tracks listed      6" in printed and "with audio         6" in printed
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert len(df) == 6 and set(df["split"]) == {"train", "val"}


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["folder", "--out", str(tmp_path), "--set", "root=/does/not/exist"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: /does/not/exist: folder not found"
    assert main(["spotifyy", "--out", str(tmp_path)]) == 2
    assert "unknown source 'spotifyy'" in capsys.readouterr().err
