from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from datamodules.loading.datamodule import MusicDataModule
from lightning_module.inference.tagger import load_checkpoint
from lightning_module.training.cli import DEFAULT_CONFIG, TaggerCLI
from lightning_module.training.module import MusicTagger
from tests.conftest import REPO_ROOT, run_training

TRAIN_CONFIGS = sorted(p for p in (REPO_ROOT / "configs").glob("*.yaml"))


def test_fast_dev_run_through_the_real_config(synthetic_manifest: Path, tmp_path: Path) -> None:
    cli = run_training(tmp_path, synthetic_manifest, "--trainer.fast_dev_run=2")
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.genre_names == cli.datamodule.genre_names  # task linked from the data


@pytest.mark.parametrize("config", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_every_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        TaggerCLI(
            MusicTagger,
            MusicDataModule,
            run=False,
            auto_configure_optimizers=False,
            args=["--config", str(config), "--print_config"],
            parser_kwargs={"default_config_files": [str(DEFAULT_CONFIG)]},
        )
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert {"trainer", "model", "data"} <= set(printed)


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 clips of 3 s (3 train and 2 val per genre x mood): enough to generalise a little."""
    from datamodules.synthetic import generate_synthetic

    out = tmp_path_factory.mktemp("small")
    return generate_synthetic(
        out, clips_per_class=5, duration=3.0, seed=2, val_fraction=0.4, test_fraction=0.0
    )


def test_short_fit_learns_genre_well_above_chance(small_manifest: Path, tmp_path: Path) -> None:
    cli = run_training(
        tmp_path,
        small_manifest,
        "--trainer.max_epochs=8",
        "--data.crops_per_clip=3",
        "--model.width=12",
        "--test_after_fit=false",
    )
    chance = 1 / len(cli.datamodule.genre_names)
    acc = float(cli.trainer.callback_metrics["val/genre_acc"])
    # 96 validation windows: chance + 0.25 is over 6 standard deviations above chance.
    assert acc >= chance + 0.25, f"val genre accuracy {acc:.2f} vs chance {chance:.2f}"


def test_checkpoint_alone_describes_the_model(trained_checkpoint: Path) -> None:
    hp = load_checkpoint(trained_checkpoint)["hyper_parameters"]
    assert len(hp["genre_names"]) == 6 and hp["mood_names"] == ["calm", "energetic", "happy", "sad"]
    assert len(hp["feature_mean"]) == len(hp["feature_std"]) == 9 and hp["sample_rate"] == 16000
    assert hp["logmel"]["n_mels"] and hp["crop_seconds"] == 2.0


def test_resume_from_last_checkpoint_continues_the_step_count(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    first = run_training(
        tmp_path, synthetic_manifest, "--test_after_fit=false", "--trainer.max_epochs=1"
    )
    steps = first.trainer.global_step
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == steps
    resumed = run_training(
        tmp_path,
        synthetic_manifest,
        "--test_after_fit=false",
        "--trainer.max_epochs=2",
        f"--ckpt_path={last}",
    )
    assert resumed.trainer.global_step == 2 * steps
