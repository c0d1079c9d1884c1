"""Bad YAML configs and bad manifests given to the training CLI: non-zero exit, one clear line
naming the key (jsonargparse) or the file and row (our ManifestError)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.manifest import read_manifest
from lightning_module.training.cli import main
from tests.conftest import REPO_ROOT

BAD_YAML = [
    ("unknown_key", "model:\n  widht: 8\n", r"Group 'model' does not accept option 'widht'"),
    ("wrong_type", "model:\n  width: eight\n", r'key "model.width".*\n.*Expected a <class .int.>'),
    ("wrong_type_trainer", "trainer:\n  max_epochs: many\n", r"trainer.max_epochs"),
    ("syntax_error", "model:\n  width: [8\n  lr: 0.1\n", r"Problems parsing config.*\n.*line 2"),
    ("tab_indent", "trainer:\n  max_epochs: 1\n\tfoo: 2\n", r"tab character.*\n.*line 3"),
    ("unknown_section", "optimiser:\n  lr: 0.1\n", r"optimiser"),
]


@pytest.mark.parametrize(("case", "text", "pattern"), BAD_YAML, ids=[c[0] for c in BAD_YAML])
def test_bad_yaml_exits_non_zero_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str, text: str, pattern: str
) -> None:
    config = tmp_path / f"{case}.yaml"
    config.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config), "--trainer.accelerator=cpu"])
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = err[err.rindex("error:") :]  # jsonargparse prints usage, then the error
    assert re.search(pattern, error), error


def test_train_script_reports_a_bad_manifest_in_one_line(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    df = read_manifest(synthetic_manifest)
    df.loc[df.index[-1], "track_id"] = df["track_id"].iloc[0]
    manifest = tmp_path / "dup.csv"
    df.to_csv(manifest, index=False)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), f"--data.manifest={manifest}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {manifest}: line {len(df) + 1} (track_id {df['track_id'].iloc[0]}): "
        "duplicate track_id"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists()
