"""LightningCLI, with the data module's task spec linked into the model."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from datamodules.loading.datamodule import MusicDataModule
from lightning_module.inference.tagger import CheckpointError
from lightning_module.training.module import MusicTagger

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "train.yaml"
#: Read from the data module once it is built (it reads the manifest) and passed to the model.
TASK_LINKS = (
    "genre_names",
    "mood_names",
    "feature_names",
    "feature_mean",
    "feature_std",
    "tag_names",
)


class TaggerCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="resume from this checkpoint (e.g. checkpoints/last.ckpt)",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="evaluate the best checkpoint on the test split after training",
        )
        parser.link_arguments("data.sample_rate", "model.sample_rate")
        parser.link_arguments("data.crop_seconds", "model.crop_seconds")
        for name in TASK_LINKS:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")


def use_tensorboard_without_tensorflow() -> None:
    """Make TensorBoard's writer use its TensorFlow stub even when TensorFlow is installed.

    TensorBoard imports TensorFlow when it can; with the optional musicnn teacher installed that
    costs every training run ~5 s and ~0.7 GB for nothing. ``tensorboard.compat.notf`` is
    TensorBoard's own switch to its stub (an empty module); no effect once its ``tf`` was loaded.
    """
    name = "tensorboard.compat.notf"
    sys.modules.setdefault(name, types.ModuleType(name))


def main(args: list[str] | None = None) -> TaggerCLI:
    """Parse ``args`` (default: ``sys.argv``), train, then test the best checkpoint."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_tensorboard_without_tensorflow()
    cli = TaggerCLI(
        MusicTagger,
        MusicDataModule,
        run=False,
        auto_configure_optimizers=False,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"default_config_files": [str(DEFAULT_CONFIG)]},
    )
    ckpt_path = cli.config.ckpt_path
    try:
        # weights_only: a checkpoint to resume from may come from anywhere; unpickling it must
        # not run code (ours hold only tensors and plain values).
        cli.trainer.fit(
            cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True
        )
    except pickle.UnpicklingError as err:
        first = (str(err).strip().splitlines() or ["unsafe content"])[0]
        raise CheckpointError(
            f"{ckpt_path}: refused to resume from it: it holds objects other than tensors and "
            f"plain values ({first})"
        ) from err
    summary = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val/")}
    if summary:
        print(
            "final validation: "
            + ", ".join(
                f"{k}={v:.3f}"
                for k, v in sorted(summary.items())
                if k.endswith(("_acc", "_f1", "/loss", "r2_mean"))
            )
        )
    if (
        cli.config.test_after_fit
        and not cli.trainer.fast_dev_run
        and "test" in cli.datamodule.datasets
    ):
        best = (
            cli.trainer.checkpoint_callback.best_model_path
            if cli.trainer.checkpoint_callback
            else ""
        )
        cli.trainer.test(
            cli.model, datamodule=cli.datamodule, ckpt_path=best or None, weights_only=True
        )
    return cli
