"""The design's rules, checked: import contracts, and recipes that keep every run's callbacks."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(REPO_ROOT / ".venv" / "bin"))
    lint_imports = lint_imports or shutil.which("lint-imports")
    if lint_imports is None:
        pytest.skip("import-linter is not installed (the dev extra installs it)")
    result = subprocess.run(
        [lint_imports], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def print_config(*configs: str) -> dict:
    args = [arg for c in configs for arg in ("--config", str(REPO_ROOT / "configs" / c))]
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "train.py"), *args, "--print_config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize(
    ("overlays", "name"),
    [
        (("real.yaml",), "real"),
        (("real.yaml", "real_distill.yaml"), "real_distill"),
        (("real.yaml", "real_finetune.yaml"), "real_finetune"),
        (("real.yaml", "student.yaml"), "student"),
    ],
)
def test_every_recipe_keeps_the_story_and_the_periodic_checkpoint(overlays, name) -> None:
    config = print_config(*overlays)
    assert config["tensorboard_story"]["n_clips"] > 0
    assert config["periodic_checkpoint"]["every_n_train_steps"] == 200
    assert config["periodic_checkpoint"]["save_last"] is True
    assert config["checkpoint"]["dirpath"] == f"checkpoints/{name}"
    assert config["checkpoint"]["monitor"] == "val/loss"
    logger = config["trainer"]["logger"]
    assert logger["class_path"].endswith("TensorBoardLogger")
    assert logger["init_args"]["name"] == name and logger["init_args"]["save_dir"] == "logs"


def test_overlays_state_only_what_differs() -> None:
    overlay = yaml.safe_load((REPO_ROOT / "configs" / "real_distill.yaml").read_text())
    assert set(overlay) == {"checkpoint", "trainer"}


def test_the_refit_trains_the_student_recipe_on_every_row_and_keeps_the_last_epoch() -> None:
    student = print_config("real.yaml", "student.yaml")
    refit = print_config("real.yaml", "student.yaml", "refit.yaml")
    assert refit["data"]["refit"] is True and student["data"]["refit"] is False
    # Same recipe: only where it writes, what it reads and how it picks a checkpoint differ.
    assert refit["model"] == student["model"]
    assert refit["trainer"]["max_epochs"] == student["trainer"]["max_epochs"]
    assert refit["checkpoint"]["monitor"] is None
    assert (refit["checkpoint"]["dirpath"], refit["checkpoint"]["filename"]) == (
        "checkpoints/refit",
        "tagger",
    )
    assert refit["data"]["teacher_outputs"].startswith("data/real/teacher_refit/")
