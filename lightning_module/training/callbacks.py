"""``TensorBoardStory``: what a person needs to see in TensorBoard to judge a training run.

Scalars (losses, metrics, learning rate) are logged by ``MusicTagger`` and Lightning's
``LearningRateMonitor``; this callback adds, each validation epoch, the pictures behind them:

- ``val_confusion/genre``, ``val_confusion/mood``: row-normalised confusion matrices, labelled.
- ``val_scatter/<feature>``: predicted vs teacher value in natural units, Pearson r and R² in the
  title (computed on every validation window, the same numbers as ``val/r/*`` and ``val/r2/*``).
- ``val_clips/logmel/<i>``: log-mel of a fixed set of validation clips, titled with the truth and
  the model's current guess, and once ``val_clips/audio/<i>``: the same clips as audio.
- the projector: clip embeddings of the validation set (windows averaged per clip), with genre and
  mood as metadata, every ``projector_every_n_epochs`` epochs and after the last one.
- HParams: the model and data configuration with the final validation metrics.

Costs are bounded: ``n_clips`` clips, at most ``max_scatter_points`` points per scatter plot and
``max_projector_clips`` clips in the projector, and small Agg figures (``lightning_module.plots``).
Under DDP the confusion matrices are synced across ranks; the other pictures show rank 0's shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.functional import pearson_corrcoef, r2_score

from datamodules.schema import IGNORE_INDEX, spread_evenly
from lightning_module.model.spec import TaggerSpec
from lightning_module.plots import confusion_figure, figure_to_array, logmel_figure, scatter_figure

#: Hyperparameters too long to be useful as HParams columns (label lists, feature statistics).
HPARAM_SKIP = {"feature_mean", "feature_std", "genre_names", "mood_names", "feature_names"}
#: Hyperparameter groups shown field by field (``logmel.n_mels``), one HParams column each.
HPARAM_GROUPS = ("logmel", "loss_weights")


def flat_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hparams`` with each group of :data:`HPARAM_GROUPS` spread into ``group.field`` keys."""
    flat = {k: v for k, v in hparams.items() if k not in HPARAM_GROUPS}
    for group in HPARAM_GROUPS:
        flat.update({f"{group}.{k}": v for k, v in (hparams.get(group) or {}).items()})
    return flat


def _name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else "?"


class TensorBoardStory(pl.Callback):
    """Confusion matrices, feature scatter plots, fixed clips, projector and HParams.

    Args:
        n_clips: validation clips shown as log-mel images and audio (spread over the split).
        max_scatter_points: points drawn per scatter plot (a random, fixed subset beyond it).
        max_projector_clips: validation clips whose embeddings go to the projector.
        projector_every_n_epochs: how often the projector embeddings are written.
        every_n_epochs: how often the images are rendered (1: every validation epoch).
    """

    def __init__(
        self,
        n_clips: int = 4,
        max_scatter_points: int = 2000,
        max_projector_clips: int = 2000,
        projector_every_n_epochs: int = 5,
        every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.n_clips = n_clips
        self.max_scatter_points = max_scatter_points
        self.max_projector_clips = max_projector_clips
        self.projector_every_n_epochs = max(1, projector_every_n_epochs)
        self.every_n_epochs = max(1, every_n_epochs)
        self.confusion: dict[str, MulticlassConfusionMatrix] = {}
        self._clips: list[dict[str, torch.Tensor]] | None = None
        self._audio_logged = False
        # (clip embeddings, metadata, step) of the last collected epoch until written
        self._projector: tuple[torch.Tensor, list[list[str]], int] | None = None
        self._reset()

    # -- collection -------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._pred: list[torch.Tensor] = []
        self._target: list[torch.Tensor] = []
        self._mask: list[torch.Tensor] = []
        self._rows: list[torch.Tensor] = []
        self._embeddings: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def _active(self, trainer: pl.Trainer) -> bool:
        return (
            isinstance(trainer.logger, TensorBoardLogger)
            and not trainer.sanity_checking
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        if not self._active(trainer):
            return
        spec = TaggerSpec.from_hparams(pl_module.hparams)
        for task in ("genre", "mood"):
            n = len(spec.names(task))
            if n > 1 and task not in self.confusion:
                self.confusion[task] = MulticlassConfusionMatrix(
                    n, normalize="true", ignore_index=IGNORE_INDEX
                )
            if task in self.confusion:
                self.confusion[task] = self.confusion[task].to(pl_module.device)
                self.confusion[task].reset()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active(trainer) or not isinstance(outputs, Mapping):
            return
        for task, metric in self.confusion.items():
            if task in outputs:
                metric.update(outputs[task].detach(), batch[task])
        if "features" in outputs:
            self._pred.append(outputs["features"].detach().float().cpu())
            self._target.append(batch["features"].float().cpu())
            self._mask.append(batch["feature_mask"].cpu())
        if "embedding" in outputs and "row" in batch:
            rows = batch["row"].cpu()
            keep = rows < self.max_projector_clips
            if keep.any():
                self._rows.append(rows[keep])
                self._embeddings.append(outputs["embedding"].detach().float().cpu()[keep])
                self._labels.append(
                    torch.stack([batch["genre"].cpu()[keep], batch["mood"].cpu()[keep]], dim=1)
                )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            return
        matrices = {task: metric.compute() for task, metric in self.confusion.items()}
        self._log_pictures(trainer, pl_module, matrices)

    @rank_zero_only
    def _log_pictures(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        matrices: dict[str, torch.Tensor],
    ) -> None:
        writer = trainer.logger.experiment
        step = trainer.global_step
        spec = TaggerSpec.from_hparams(pl_module.hparams)
        epoch = f"epoch {trainer.current_epoch}"
        for task, matrix in matrices.items():
            title = f"{task} (rows: true class, normalised), {epoch}"
            fig = confusion_figure(matrix.cpu().numpy(), list(spec.names(task)), title)
            writer.add_image(f"val_confusion/{task}", figure_to_array(fig), step, dataformats="HWC")
        self._log_scatter(writer, step, spec)
        self._log_clips(writer, step, trainer, pl_module)
        self._collect_projector(trainer, spec)
        last = trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        if (trainer.current_epoch + 1) % self.projector_every_n_epochs == 0 or last:
            self._write_projector(writer)

    # -- pictures ---------------------------------------------------------------------------------
    def _log_scatter(self, writer: Any, step: int, spec: TaggerSpec) -> None:
        if not self._pred:
            return
        pred, target, mask = torch.cat(self._pred), torch.cat(self._target), torch.cat(self._mask)
        mean = torch.tensor(spec.feature_mean, dtype=torch.float32)
        std = torch.tensor(spec.feature_std, dtype=torch.float32)
        pred, target = pred * std + mean, target * std + mean  # z-scores → natural units
        generator = torch.Generator().manual_seed(0)  # the same subset of points every epoch
        for j, name in enumerate(spec.feature_names):
            rows = mask[:, j]
            if int(rows.sum()) < 2:
                continue
            p, t = pred[rows, j], target[rows, j]
            r, r2 = float(pearson_corrcoef(p, t)), float(r2_score(p, t))
            if len(p) > self.max_scatter_points:
                pick = torch.randperm(len(p), generator=generator)[: self.max_scatter_points]
                p, t = p[pick], t[pick]
            fig = scatter_figure(p.numpy(), t.numpy(), name, r, r2)
            writer.add_image(f"val_scatter/{name}", figure_to_array(fig), step, dataformats="HWC")

    def _fixed_clips(self, trainer: pl.Trainer) -> list[dict[str, torch.Tensor]]:
        """``n_clips`` items spread evenly over the validation set, chosen once."""
        if self._clips is None:
            dataset = self._val_dataset(trainer)
            try:
                size = len(dataset)
            except TypeError:
                size = 0
            self._clips = [dataset[i] for i in spread_evenly(size, self.n_clips)]
        return self._clips

    @torch.no_grad()
    def _log_clips(
        self, writer: Any, step: int, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        clips = self._fixed_clips(trainer)
        if not clips:
            return
        spec = TaggerSpec.from_hparams(pl_module.hparams)
        audio = torch.stack([clip["audio"] for clip in clips]).to(pl_module.device)
        net = pl_module.net
        specs = net.frontend(audio)[:, 0].float().cpu()
        out = net(audio)  # the callback runs in eval mode: no SpecAugment, no dropout
        for i, clip in enumerate(clips):
            parts = []
            for task in ("genre", "mood"):
                names = list(spec.names(task))
                if task in out and names:
                    guess = out[task][i].float().softmax(-1)
                    k = int(guess.argmax())
                    truth = _name(names, int(clip[task]))
                    parts.append(f"{task} {truth} → {names[k]} {float(guess[k]):.2f}")
            title = f"clip {i}: " + "; ".join(parts)
            fig = logmel_figure(specs[i].numpy(), spec.sample_rate, spec.logmel.hop_length, title)
            writer.add_image(f"val_clips/logmel/{i}", figure_to_array(fig), step, dataformats="HWC")
            if not self._audio_logged:
                writer.add_audio(
                    f"val_clips/audio/{i}",
                    clip["audio"][None].float().clamp(-1, 1),
                    step,
                    sample_rate=spec.sample_rate,
                )
        self._audio_logged = True

    # -- projector --------------------------------------------------------------------------------
    def _collect_projector(self, trainer: pl.Trainer, spec: TaggerSpec) -> None:
        if not self._rows:
            return
        rows, embeddings = torch.cat(self._rows), torch.cat(self._embeddings)
        labels = torch.cat(self._labels)
        unique, inverse = rows.unique(return_inverse=True)
        sums = torch.zeros(len(unique), embeddings.shape[1]).index_add_(0, inverse, embeddings)
        counts = torch.bincount(inverse, minlength=len(unique)).clamp(min=1)
        # Every window of a clip carries the clip's labels, so any one of them will do.
        clip_labels = torch.zeros(len(unique), 2, dtype=torch.long).index_copy_(0, inverse, labels)
        ids = list(getattr(self._val_dataset(trainer), "track_ids", None) or [])
        metadata = [
            [
                _name(list(spec.genre_names), int(genre)),
                _name(list(spec.mood_names), int(mood)),
                str(ids[row]) if row < len(ids) else str(row),
            ]
            for (genre, mood), row in zip(clip_labels.tolist(), unique.tolist(), strict=True)
        ]
        self._projector = (sums / counts[:, None], metadata, trainer.global_step)

    @staticmethod
    def _val_dataset(trainer: pl.Trainer) -> Any:
        loader = trainer.val_dataloaders
        if isinstance(loader, list | tuple):
            loader = loader[0] if loader else None
        return getattr(loader, "dataset", None)

    def _write_projector(self, writer: Any) -> None:
        if self._projector is None:
            return
        embeddings, metadata, step = self._projector
        writer.add_embedding(
            embeddings,
            metadata=metadata,
            metadata_header=["genre", "mood", "track_id"],
            global_step=step,
            tag="val_clips",
        )
        self._projector = None

    # -- end of training --------------------------------------------------------------------------
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not isinstance(trainer.logger, TensorBoardLogger):
            return
        self._finish(trainer, pl_module)

    @rank_zero_only
    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_projector(trainer.logger.experiment)
        params: dict[str, Any] = {
            k: v
            for k, v in flat_hparams(pl_module.hparams).items()
            if k not in HPARAM_SKIP and not k.startswith("_") and v is not None
        }
        datamodule = getattr(trainer, "datamodule", None)
        for k, v in dict(getattr(datamodule, "hparams", {}) or {}).items():
            if v is not None:
                params[f"data.{k}"] = v
        params.update(max_epochs=trainer.max_epochs, precision=str(trainer.precision))
        params = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in params.items()
        }
        metrics = {
            f"hparams/{k}": float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/") and torch.as_tensor(v).numel() == 1
        }
        if metrics:
            trainer.logger.log_hyperparams(params, metrics, step=trainer.global_step)
