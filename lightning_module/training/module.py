"""``MusicTagger``: trains :class:`TaggerNet` with one masked multi-task loss (a thin system:
the network, the loss and the metrics live in their own modules)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pytorch_lightning as pl
import torch

from datamodules.schema import DEFAULT_CROP_SECONDS
from lightning_module.model.backbones.registry import (
    dictated_changes,
    freeze_modules,
    get_backbone,
)
from lightning_module.model.losses import MultiTaskLoss
from lightning_module.model.network import build_network
from lightning_module.model.settings import LogMelSettings, LossWeights
from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec
from lightning_module.model.tempo import tempo_target
from lightning_module.training.metrics import SplitMetrics
from lightning_module.training.optim import adamw_warmup_cosine
from lightning_module.training.warm_start import copy_weights, warm_start_settings

log = logging.getLogger(__name__)


class MusicTagger(pl.LightningModule):
    """Multi-task tagger: genre and mood classification, audio-feature regression, teacher tags.

    Every argument is saved in the checkpoint as plain values (the two groups as nested dicts), so
    a checkpoint alone rebuilds the model (read back as a :class:`TaggerSpec`). The task arguments
    (label names, feature statistics) are filled in from the data module by the CLI.

    Args:
        genre_names, mood_names: class names of the classification heads (empty: no head).
        feature_names: regression targets, in natural units; the head predicts z-scores.
        feature_mean, feature_std: train-split statistics used to standardise the targets.
        tag_names: teacher tags of the multi-label head (empty: no head).
        feature_sources, train_sources: what the training rows were (see ``TaggerSpec``).
        genre_tag_names: multi-label AllMusic genre tags of the genre-tag head (empty: no head);
            filled by the data module from the manifest's ``genre_tag_<name>`` columns.
        tempo_bins, tempo_min, tempo_max: a tempo head over log-spaced BPM bins (0: none), trained
            on the ``tempo`` feature's rows; it then gives the predicted tempo.
        key_names, key_n_fft, key_hidden: the key head (``model.key.KeyBranch``; empty names:
            none), trained on the ``key`` batch targets (manifest ``key``/``mode`` columns).
        sample_rate: the rate audio is decoded at (Hz; the CLI links ``--data.sample_rate``).
        logmel: the log-mel front-end (:class:`LogMelSettings`: ``--model.logmel.n_mels 64``;
            its plain dict, as a checkpoint or a YAML section holds it, is taken too).
        crop_seconds: window length the model is trained on; inference windows long audio with it.
        freq_mask, time_mask, n_masks: SpecAugment (training only).
        backbone: a name in ``lightning_module.model.backbones.registry``: ``resnet``, or
            ``musicnn`` (the teacher's architecture, which dictates musicnn's input: the CLI
            writes those settings into the config; built directly, they are set here and logged).
        pretrained: weights for a backbone that has them (``musicnn``: made by
            ``scripts/convert_musicnn.py``); the tag head starts from the teacher's taggram.
        init_from: a checkpoint to fine-tune (``shipped``: the shipped model): it dictates the
            architecture; its front-end, backbone, tempo branch and every head whose labels equal
            this run's are copied, the other heads start fresh (``training/warm_start.py``).
        freeze: ``none``; ``frontend``: the backbone's front-end gets no gradients and keeps its
            BatchNorm statistics (fine-tuning on little data; ~3.5x cheaper per musicnn step);
            ``backbone``: the whole backbone, only the heads learn (a linear probe).
        frontend_lr_scale: the front-end's learning rate as a fraction of ``lr`` (1: the same;
            0.1 with ``freeze none`` unfreezes a pretrained front-end at a low rate, so the
            filters it learned on a million songs move little while the layers above adapt).
        width, blocks, embed_dim, dropout: backbone size.
        loss_weights: each task's loss weight (:class:`LossWeights`, keyed by task name:
            ``--model.loss_weights.genre_tags 0.5``; or its plain dict).
        distill_weight: weight of the loss against a teacher's soft targets of every crop (the
            data module's ``teacher_outputs``; 0: hard labels only). Each head's soft term is
            weighted like its hard loss. Not a task's weight, so not in ``loss_weights``: it
            scales a second loss over every head, and only a recipe with a teacher sets it.
        distill_temperature: softens the genre and mood distributions of teacher and student in
            that loss (Hinton et al.; the loss is scaled by T², 1: no softening).
        label_smoothing: for the classification losses (a target's shape, not a weight).
        lr, weight_decay, warmup_fraction: AdamW, linear warm-up then cosine decay.
        channels_last: NHWC backbone weights and spectrograms (same values, same checkpoint keys).
        compile: ``torch.compile`` the network for training and evaluation (inference runs the
            plain network).
    """

    def __init__(
        self,
        genre_names: list[str] | None = None,
        mood_names: list[str] | None = None,
        feature_names: list[str] | None = None,
        feature_mean: list[float] | None = None,
        feature_std: list[float] | None = None,
        tag_names: list[str] | None = None,
        feature_sources: list[dict[str, int]] | None = None,
        train_sources: dict[str, int] | None = None,
        genre_tag_names: list[str] | None = None,
        tempo_bins: int = 0,
        tempo_min: float = 30.0,
        tempo_max: float = 300.0,
        key_names: list[str] | None = None,
        key_n_fft: int = 8192,
        key_hidden: int = 16,
        sample_rate: int = 16000,
        crop_seconds: float = DEFAULT_CROP_SECONDS,
        logmel: LogMelSettings = LogMelSettings(),
        freq_mask: int = 12,
        time_mask: int = 24,
        n_masks: int = 2,
        backbone: str = "resnet",
        pretrained: str | None = None,
        init_from: str | None = None,
        freeze: Literal["none", "frontend", "backbone"] = "none",
        frontend_lr_scale: float = 1.0,
        width: int = 32,
        blocks: list[int] | None = None,
        embed_dim: int = 256,
        dropout: float = 0.2,
        loss_weights: LossWeights = LossWeights(),
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        label_smoothing: float = 0.05,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.1,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # save_hyperparameters reads the arguments from here: the groups go into the checkpoint
        # as plain dicts (weights_only loading), whether given as groups or as a checkpoint's dicts.
        logmel = LogMelSettings.of(logmel).to_dict()
        loss_weights = LossWeights.of(loss_weights).to_dict()
        self.save_hyperparameters()
        source, inherited = (
            warm_start_settings(init_from, self.hparams) if init_from else (None, {})
        )
        hp = {**self.hparams, **inherited}
        entry = get_backbone(hp["backbone"])
        if pretrained and entry.init_pretrained is None:
            raise ValueError(f"--model.pretrained needs --model.backbone musicnn, not {backbone!r}")
        changed = dictated_changes(hp["backbone"], hp, log)
        # Complete, plain, versioned values: the checkpoint alone rebuilds the model.
        spec = TaggerSpec.from_hparams({**hp, **changed})
        self.hparams.update({**changed, **spec.to_hparams(), "format_version": FORMAT_VERSION})
        self.spec = spec
        self.net = build_network(spec)
        if source is not None:
            copy_weights(source, self.net, spec)
        # A compiled *function*, not a compiled module: checkpoints keep their plain ``net.*`` keys.
        self._compiled_net = torch.compile(self.net.forward) if compile else None
        if pretrained:
            heads = self.net.heads.heads
            tag_head = heads["tags"] if "tags" in heads else None  # noqa: SIM401 (ModuleDict)
            entry.init_pretrained(self.net.backbone, pretrained, tag_head, spec.tag_names)
        self._frozen = freeze_modules(self.net.backbone, freeze)
        if not 0 < frontend_lr_scale <= 1:
            raise ValueError(
                f"--model.frontend_lr_scale must be in (0, 1], not {frontend_lr_scale}"
            )
        tempo = tempo_target(spec)
        self.loss = MultiTaskLoss(
            spec.loss_weights, label_smoothing, tempo, distill_weight, distill_temperature
        )
        # Attributes, not a ModuleDict: "train" would shadow nn.Module.train. Train metrics see
        # augmented crops and keep no loss means (training_step logs the losses itself).
        self.train_metrics = SplitMetrics.for_spec(spec, tempo, with_losses=False)
        self.val_metrics = SplitMetrics.for_spec(spec, tempo)
        self.test_metrics = SplitMetrics.for_spec(spec, tempo)

    def train(self, mode: bool = True) -> MusicTagger:
        """Frozen modules stay in eval mode: their BatchNorm keeps the pretrained statistics."""
        super().train(mode)
        for module in getattr(self, "_frozen", []):
            module.eval()
        return self

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """(batch, samples) → dict of head outputs; see :class:`TaggerNet`."""
        return (self._compiled_net or self.net)(audio)

    def _step(
        self, batch: dict[str, torch.Tensor], split: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Outputs and losses of one batch; updates the split's metrics."""
        out = self(batch["audio"])
        losses = self.loss(out, batch)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(
                f"non-finite {split} loss: "
                + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            )
        getattr(self, f"{split}_metrics").update(out, batch, None if split == "train" else losses)
        return out, losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, losses = self._step(batch, "train")
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()},
            on_step=True,
            on_epoch=True,
            batch_size=len(batch["audio"]),
        )
        return losses["loss"]

    # Eval steps return the outputs: TensorBoardStory draws its scatter plots from them.
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        return self._step(batch, "val")[0]

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        return self._step(batch, "test")[0]

    def _log_split(self, split: str) -> None:
        values = getattr(self, f"{split}_metrics").compute(split)
        headline = {
            k: values.pop(k) for k in (f"{split}/genre_acc", f"{split}/mood_acc") if k in values
        }
        self.log_dict(headline, sync_dist=True, prog_bar=split != "train")
        self.log_dict(values, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_split("train")

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        total = self.trainer.estimated_stepping_batches
        # .get: checkpoints saved before the option existed resume at one rate.
        scale = hp.get("frontend_lr_scale", 1.0)
        frontend = self.net.backbone.frontend_modules()
        scales = {id(p): scale for module in frontend for p in module.parameters()}
        return adamw_warmup_cosine(
            self.named_parameters(), hp.lr, hp.weight_decay, hp.warmup_fraction, total, scales
        )
