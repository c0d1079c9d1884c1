"""LightningCLI, with the data module's task spec linked into the model."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import (
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    TQDMProgressBar,
)
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from datamodules.loading.datamodule import MusicDataModule
from datamodules.schema import TASK_FIELDS
from lightning_module.inference.errors import CheckpointError
from lightning_module.model.backbones.registry import dictated_changes
from lightning_module.model.settings import changes_said
from lightning_module.training.callbacks import TensorBoardStory
from lightning_module.training.module import MusicTagger
from lightning_module.training.warm_start import DATA_FIELDS, load_source, source_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "train.yaml"
#: Steps between progress-bar refreshes: often enough to watch, rare enough for a log file.
PROGRESS_REFRESH = 10


#: Callbacks every run has, each under its own config key, so a recipe overlay states only what
#: differs (``checkpoint: {dirpath: checkpoints/real}``) instead of repeating the callback list.
FORCED_CALLBACKS: dict[str, tuple[type[Callback], dict[str, Any]]] = {
    # The best checkpoint by validation loss, and last.ckpt at every validation.
    "checkpoint": (
        ModelCheckpoint,
        {
            "dirpath": "checkpoints",
            "filename": "best-{epoch:03d}",
            "monitor": "val/loss",
            "mode": "min",
            "save_top_k": 1,
            "save_last": True,
            "enable_version_counter": False,
        },
    ),
    # last.ckpt every N steps as well, so a kill mid-epoch loses at most N steps (same folder).
    "periodic_checkpoint": (
        ModelCheckpoint,
        {
            "save_top_k": 0,
            "save_last": True,
            "every_n_train_steps": 200,
            "enable_version_counter": False,
        },
    ),
    "lr_monitor": (LearningRateMonitor, {"logging_interval": "step"}),
    "tensorboard_story": (TensorBoardStory, {"n_clips": 4, "projector_every_n_epochs": 5}),
}


class TaggerCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for key, (callback, defaults) in FORCED_CALLBACKS.items():
            parser.add_lightning_class_args(callback, key)
            parser.set_defaults({f"{key}.{name}": value for name, value in defaults.items()})
        parser.link_arguments("checkpoint.dirpath", "periodic_checkpoint.dirpath")
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
        for name in TASK_FIELDS:  # read from the data module once it has read the manifest
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Write what the checkpoint to fine-tune (``--model.init_from``: its architecture, sample
        rate and window, into the data module too) and the chosen backbone (musicnn: its input)
        dictate into the config, so the config LightningCLI saves agrees with the checkpoint's
        hyperparameters and a fine-tuning config needs none of them."""
        model = self.config.model
        if model.init_from:
            settings = source_settings(load_source(model.init_from).spec)
            for said in changes_said(model.as_dict(), settings):
                rank_zero_info(f"init_from {model.init_from}: model.{said}")
            for key, value in settings.items():
                if key in DATA_FIELDS:
                    setattr(self.config.data, key, value)
                _set(model, key, value)
        changed = dictated_changes(model.backbone, model.as_dict())
        changed.pop("sample_rate", None)  # dictated_changes refuses a different rate: the data's
        for said in changes_said(model.as_dict(), changed):
            log.info("%s backbone: model.%s", model.backbone, said)
        for key, value in changed.items():
            _set(model, key, value)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """The progress bar (tqdm, refreshed every ``PROGRESS_REFRESH`` steps) and the model
        summary chosen explicitly: Lightning would silently switch both to Rich when an extra
        installs ``rich``, and Rich writes nothing to a redirected log until the run ends."""
        listed = [*callbacks, *(config.get("callbacks") or [])]
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in listed
        ):
            callbacks = [*callbacks, TQDMProgressBar(refresh_rate=PROGRESS_REFRESH)]
        # The model summary too: plain text, not Rich's table (same silent switch).
        if config.get("enable_model_summary", True) is not False and not any(
            isinstance(c, ModelSummary) for c in listed
        ):
            callbacks = [*callbacks, ModelSummary()]
        return super()._instantiate_trainer(config, callbacks)


def _set(config: Namespace, key: str, value: Any) -> None:
    """Set ``config.key`` to a plain value; a group's dict field by field (the config keeps the
    group as a nested namespace, which LightningCLI instantiates as the dataclass)."""
    if isinstance(value, Mapping):
        for name, field_value in value.items():
            config[f"{key}.{name}"] = field_value
    else:
        config[key] = value


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


def run(args: list[str] | None = None) -> int:
    """``scripts/train.py`` and ``audiotagger train``: train, and turn the errors a user can fix
    (a bad manifest, unreadable audio, a checkpoint that cannot be used) into one line."""
    from datamodules.audio import AudioError
    from datamodules.manifest import ManifestError

    try:
        main(args)
    except (ManifestError, AudioError, CheckpointError) as err:  # one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
