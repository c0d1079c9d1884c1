"""``MusicTagger``: trains :class:`TaggerNet` with one masked multi-task loss."""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAUROC,
    MultilabelStatScores,
)
from torchmetrics.regression import PearsonCorrCoef, R2Score

from lightning_module.backbones.musicnn import (
    MUSICNN_FRONTEND,
    MusicnnBackbone,
    init_from_pretrained,
)
from lightning_module.network import build_network

log = logging.getLogger(__name__)

IGNORE_INDEX = -1
EVAL_SPLITS = ("val", "test")
#: A teacher probability above this counts as a positive tag for the per-tag ROC-AUC.
TEACHER_POSITIVE = 0.5


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over rows whose target is not ``IGNORE_INDEX``; 0 (with grad) if none."""
    valid = target != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), target[valid], label_smoothing=label_smoothing)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``mask`` is true; 0 (with grad) if none."""
    mask = mask.to(pred.dtype)
    return ((pred.float() - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def masked_soft_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against soft targets in [0, 1], over entries where ``mask`` is true."""
    mask = mask.to(torch.float32)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


class MusicTagger(pl.LightningModule):
    """Multi-task tagger: genre and mood classification, audio-feature regression, teacher tags.

    Every argument is a plain value and is saved in the checkpoint, so a checkpoint alone rebuilds
    the model. The task arguments (label names, feature statistics) are filled in from the data
    module by the CLI.

    Args:
        genre_names, mood_names: class names of the classification heads (empty: no head).
        feature_names: regression targets, in natural units; the head predicts z-scores.
        feature_mean, feature_std: train-split statistics used to standardise the targets.
        tag_names: teacher tags of the multi-label head (empty: no head).
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max, compression: log-mel frontend.
        mel_norm, mel_scale: mel filterbank (torchaudio ``norm`` / ``mel_scale``).
        crop_seconds: window length the model is trained on; inference windows long audio with it.
        freq_mask, time_mask, n_masks: SpecAugment (training only).
        backbone: backbone name: ``resnet``, or ``musicnn`` (the teacher's architecture, which
            also sets the frontend to musicnn's input; see ``MUSICNN_FRONTEND``).
        pretrained: weights for the ``musicnn`` backbone, made by ``scripts/convert_musicnn.py``;
            the tag head starts from the teacher's taggram for every tag it shares.
        freeze: ``none``; ``frontend``: the backbone's front-end (:meth:`frontend_modules`) gets
            no gradients and keeps its BatchNorm statistics, the usual way to fine-tune a pretrained
            backbone on little data (and ~3.5x cheaper per musicnn step); ``backbone``: the whole
            backbone, only the heads learn (a linear probe of the pretrained embedding).
        width, blocks, embed_dim, dropout: backbone size.
        genre_weight, mood_weight, feature_weight, tag_weight: multi-task loss weights.
        label_smoothing: for the classification losses.
        lr, weight_decay, warmup_fraction: AdamW with a one-cycle schedule.
        channels_last: NHWC backbone weights and spectrograms (faster convolutions on GPUs with
            bf16/fp16 and with oneDNN on CPUs; same values, same checkpoint keys).
        compile: ``torch.compile`` the network for training and evaluation (compiled on the
            first batch; needs a C++ compiler on CPU). Inference runs the plain network.
    """

    def __init__(
        self,
        genre_names: list[str] | None = None,
        mood_names: list[str] | None = None,
        feature_names: list[str] | None = None,
        feature_mean: list[float] | None = None,
        feature_std: list[float] | None = None,
        tag_names: list[str] | None = None,
        sample_rate: int = 16000,
        crop_seconds: float = 3.0,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 96,
        f_min: float = 0.0,
        f_max: float | None = None,
        compression: str = "db",
        mel_norm: str | None = None,
        mel_scale: str = "htk",
        freq_mask: int = 12,
        time_mask: int = 24,
        n_masks: int = 2,
        backbone: str = "resnet",
        pretrained: str | None = None,
        freeze: Literal["none", "frontend", "backbone"] = "none",
        width: int = 32,
        blocks: list[int] | None = None,
        embed_dim: int = 256,
        dropout: float = 0.2,
        genre_weight: float = 1.0,
        mood_weight: float = 1.0,
        feature_weight: float = 1.0,
        tag_weight: float = 1.0,
        label_smoothing: float = 0.05,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.1,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Store plain, complete values so the checkpoint alone rebuilds the model.
        feature_names = list(feature_names or [])
        self.hparams.update(
            genre_names=list(genre_names or []),
            mood_names=list(mood_names or []),
            feature_names=feature_names,
            feature_mean=[float(v) for v in (feature_mean or [0.0] * len(feature_names))],
            feature_std=[float(v) for v in (feature_std or [1.0] * len(feature_names))],
            tag_names=list(tag_names or []),
            blocks=list(blocks or [1, 1, 1, 1]),
        )
        if backbone == "musicnn":
            self._use_musicnn_frontend()
        elif pretrained:
            raise ValueError(f"--model.pretrained needs --model.backbone musicnn, not {backbone!r}")
        self.net = build_network(self.hparams)
        # A compiled *function* rather than a compiled module, so it is not registered as a
        # submodule and checkpoints keep their plain ``net.*`` keys. Compiles lazily.
        self._compiled_net = torch.compile(self.net.forward) if compile else None
        if pretrained:
            heads = self.net.heads.heads
            init_from_pretrained(
                self.net.backbone,
                pretrained,
                heads["tags"] if "tags" in heads else None,  # noqa: SIM401 (ModuleDict has no get)
                self.hparams.tag_names,
            )
        self._frozen = self._freeze(freeze)
        self.tag_metrics = nn.ModuleDict({split: self._make_tag_metrics() for split in EVAL_SPLITS})
        self.metrics = nn.ModuleDict({split: self._make_metrics() for split in EVAL_SPLITS})
        # Training metrics on the augmented crops; not in ``metrics``: "train" is a Module method.
        self.train_metrics = self._make_metrics()
        self.loss_means = nn.ModuleDict(
            {
                split: nn.ModuleDict({k: MeanMetric() for k in self._loss_names()})
                for split in EVAL_SPLITS
            }
        )

    # -- frozen layers ----------------------------------------------------------------------------
    def _freeze(self, freeze: str) -> list[nn.Module]:
        """Stop gradients into the modules ``freeze`` names; return them (see :meth:`train`)."""
        backbone = self.net.backbone
        if freeze == "none":
            return []
        if freeze == "backbone":
            modules = [backbone]
        elif freeze == "frontend":
            modules = list(backbone.frontend_modules())
        else:
            raise ValueError(f"--model.freeze must be none, frontend or backbone, not {freeze!r}")
        for module in modules:
            module.requires_grad_(False)
            # Lightning never calls train() itself; it restores each module's own mode after
            # validation, so eval mode set here lasts for the whole fit.
            module.eval()
        return modules

    def train(self, mode: bool = True) -> MusicTagger:
        """Frozen modules stay in eval mode: their BatchNorm keeps the pretrained statistics
        (updating them from a few hundred clips would undo what freezing keeps)."""
        super().train(mode)
        for module in getattr(self, "_frozen", []):
            module.eval()
        return self

    # -- metrics ----------------------------------------------------------------------------------
    def _loss_names(self) -> list[str]:
        return ["loss", "genre_loss", "mood_loss", "feature_loss", "tag_loss"]

    def _make_metrics(self) -> nn.ModuleDict:
        hp = self.hparams
        metrics: dict[str, nn.Module] = {}
        for task in ("genre", "mood"):
            n = len(hp[f"{task}_names"])
            if n > 1:
                metrics[task] = MetricCollection(
                    {
                        "acc": MulticlassAccuracy(n, average="micro", ignore_index=IGNORE_INDEX),
                        "f1": MulticlassF1Score(n, average="macro", ignore_index=IGNORE_INDEX),
                    }
                )
        for name in hp.feature_names:
            metrics[f"r2_{name}"] = R2Score()
            metrics[f"r_{name}"] = PearsonCorrCoef()
        return nn.ModuleDict(metrics)

    # -- forward and loss -------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """(batch, samples) → dict of head outputs; see :class:`TaggerNet`."""
        if self._compiled_net is not None:
            return self._compiled_net(audio)
        return self.net(audio)

    def _losses(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        hp = self.hparams
        zero = out["embedding"].sum() * 0.0
        losses = {
            "genre_loss": masked_cross_entropy(out["genre"], batch["genre"], hp.label_smoothing)
            if "genre" in out
            else zero,
            "mood_loss": masked_cross_entropy(out["mood"], batch["mood"], hp.label_smoothing)
            if "mood" in out
            else zero,
            "feature_loss": masked_mse(out["features"], batch["features"], batch["feature_mask"])
            if "features" in out
            else zero,
            "tag_loss": masked_soft_bce(out["tags"], batch["tags"], batch["tag_mask"])
            if "tags" in out
            else zero,
        }
        losses["loss"] = (
            hp.genre_weight * losses["genre_loss"]
            + hp.mood_weight * losses["mood_loss"]
            + hp.feature_weight * losses["feature_loss"]
            + hp.tag_weight * losses["tag_loss"]
        )
        return losses

    def _shared_step(self, batch: dict[str, torch.Tensor], split: str) -> tuple[dict, dict]:
        out = self(batch["audio"])
        losses = self._losses(out, batch)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(
                f"non-finite {split} loss: "
                + ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            )
        return out, losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out, losses = self._shared_step(batch, "train")
        self._update_metrics(out, batch, "train")
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()},
            on_step=True,
            on_epoch=True,
            batch_size=len(batch["audio"]),
        )
        return losses["loss"]

    def _eval_step(self, batch: dict[str, torch.Tensor], split: str) -> dict[str, torch.Tensor]:
        out, losses = self._shared_step(batch, split)
        for k, v in losses.items():
            self.loss_means[split][k].update(v.detach(), weight=len(batch["audio"]))
        self._update_tag_metrics(out, batch, split)
        self._update_metrics(out, batch, split)
        return out

    def _update_metrics(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], split: str
    ) -> None:
        metrics = self.train_metrics if split == "train" else self.metrics[split]
        for task in ("genre", "mood"):
            if task in metrics:
                metrics[task].update(out[task].detach(), batch[task])
        if "features" in out:
            mask = batch["feature_mask"]
            for j, name in enumerate(self.hparams.feature_names):
                rows = mask[:, j]
                if rows.any():
                    pred, target = (
                        out["features"][rows, j].detach().float(),
                        batch["features"][rows, j],
                    )
                    metrics[f"r2_{name}"].update(pred, target)
                    metrics[f"r_{name}"].update(pred, target)

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "test")

    def _log_eval(self, split: str) -> None:
        values: dict[str, float] = {}
        # train losses are logged per step and epoch by training_step; eval losses are means here
        means = self.loss_means[split].items() if split in self.loss_means else ()
        for k, mean in means:
            values[f"{split}/{k}"] = mean.compute()
            mean.reset()
        metrics = self.train_metrics if split == "train" else self.metrics[split]
        for name, metric in metrics.items():
            if isinstance(metric, MetricCollection):
                if metric[next(iter(metric.keys(keep_base=True)))].update_count:
                    for k, v in metric.compute().items():
                        values[f"{split}/{name}_{k}"] = v
            elif metric.update_count and _enough_samples(metric):
                v = metric.compute()
                if torch.isfinite(v):
                    values[f"{split}/{name.replace('_', '/', 1)}"] = v
            metric.reset()
        r2 = [v for k, v in values.items() if k.startswith(f"{split}/r2/")]
        if r2:
            values[f"{split}/feature_r2_mean"] = torch.stack(
                [torch.as_tensor(v) for v in r2]
            ).mean()
        values.update(self._tag_auc_values(split))
        headline = {
            k: values.pop(k) for k in (f"{split}/genre_acc", f"{split}/mood_acc") if k in values
        }
        self.log_dict(headline, sync_dist=True, prog_bar=split != "train")
        self.log_dict(values, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_eval("train")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    # -- teacher tags ---------------------------------------------------------------------------
    def _use_musicnn_frontend(self) -> None:
        """musicnn's weights only make sense on musicnn's own input: set the frontend to it."""
        hp = self.hparams
        if hp.sample_rate != MUSICNN_FRONTEND["sample_rate"]:
            raise ValueError(
                f"the musicnn backbone needs sample_rate {MUSICNN_FRONTEND['sample_rate']}, "
                f"not {hp.sample_rate} (set --data.sample_rate)"
            )
        changed = [f"{k}={v}" for k, v in MUSICNN_FRONTEND.items() if hp.get(k) != v]
        if changed:
            log.info("musicnn backbone: frontend set to musicnn's input (%s)", ", ".join(changed))
        hp.update(MUSICNN_FRONTEND, embed_dim=MusicnnBackbone().embed_dim)

    def _make_tag_metrics(self) -> nn.ModuleDict:
        n = len(self.hparams.tag_names)
        if n == 0:
            return nn.ModuleDict()
        # Binned (200 thresholds): constant memory however many windows are evaluated.
        return nn.ModuleDict(
            {
                "auroc": MultilabelAUROC(
                    n, average=None, thresholds=200, ignore_index=IGNORE_INDEX
                ),
                "stats": MultilabelStatScores(n, average=None, ignore_index=IGNORE_INDEX),
            }
        )

    def _update_tag_metrics(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], split: str
    ) -> None:
        metrics = self.tag_metrics[split]
        if "auroc" not in metrics or "tags" not in out:
            return
        # The teacher's soft targets binarised; entries without a teacher value are ignored.
        target = (batch["tags"] > TEACHER_POSITIVE).long()
        target = target.masked_fill(~batch["tag_mask"].bool(), IGNORE_INDEX)
        probs = out["tags"].detach().float().sigmoid()
        metrics["auroc"].update(probs, target)
        metrics["stats"].update(probs, target)

    def _tag_auc_values(self, split: str) -> dict[str, torch.Tensor]:
        """Per-tag ROC-AUC against the teacher, and their mean over tags where it is defined."""
        if split not in self.tag_metrics or "auroc" not in self.tag_metrics[split]:
            return {}
        metrics = self.tag_metrics[split]
        if not metrics["auroc"].update_count:
            return {}
        auc = metrics["auroc"].compute()
        tp, fp, tn, fn, _ = metrics["stats"].compute().unbind(-1)
        for metric in metrics.values():
            metric.reset()
        # A tag the teacher gives to every window, or to none, has no AUC in this split.
        defined = ((tp + fn) > 0) & ((fp + tn) > 0)
        values = {
            f"{split}/tag_auc/{name}": auc[i]
            for i, name in enumerate(self.hparams.tag_names)
            if defined[i]
        }
        if defined.any():
            values[f"{split}/tag_auc_mean"] = auc[defined].mean()
        return values

    # -- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": hp.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=hp.lr,
        )
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 1:
            return {"optimizer": optimizer}
        # Linear warm-up then cosine decay to 2% of lr. A LambdaLR (not OneCycleLR) because its
        # length is recomputed on resume: a run resumed with a larger max_epochs keeps going.
        warmup = max(1, int(hp.warmup_fraction * total))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _enough_samples(metric: nn.Module) -> bool:
    """R² and Pearson r need at least two samples; fewer gives NaN and a warning."""
    n = getattr(metric, "total", None)
    if n is None:
        n = getattr(metric, "n_total", None)
    return n is None or float(torch.as_tensor(n).sum()) >= 2
