"""Masked multi-task losses. Every loss takes logits (or z-scores) and ignores missing targets,
so rows labelled for one head only (GTZAN: genre; 4Q: mood; a table: features) mix in a batch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.schema import IGNORE_INDEX
from lightning_module.model.settings import LossWeights
from lightning_module.model.tasks import TASKS, Task, loss_names
from lightning_module.model.tempo import TempoTarget

#: Loss names :class:`MultiTaskLoss` returns, the weighted total first (one per task).
LOSS_NAMES: tuple[str, ...] = loss_names()


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over rows whose target is not ``IGNORE_INDEX``; 0 (with grad) if none.

    Shapes: logits (batch, classes), target (batch,) int64.
    """
    valid = target != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), target[valid], label_smoothing=label_smoothing)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``mask`` is true; 0 (with grad) if none.

    Shapes: all (batch, n); ``mask`` bool.
    """
    mask = mask.to(pred.dtype)
    return ((pred.float() - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def masked_soft_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against soft targets in [0, 1], over entries where ``mask`` is true.

    Shapes: all (batch, n); ``mask`` bool.
    """
    mask = mask.to(torch.float32)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def masked_genre_tag_bce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Multi-label BCE of the genre-tag head on hard 0/1 targets, over rows (or entries) the
    mask keeps: a row without genre tags contributes nothing, whatever its targets hold.

    Shapes: logits, target (batch, n_genre_tags); mask (batch,) per row, broadcast over the tags,
    or (batch, n_genre_tags).
    """
    mask = mask.bool()
    if mask.dim() == 1:
        mask = mask[:, None].expand_as(logits)
    # A masked entry's target is replaced, so NaN or garbage there cannot reach the gradient.
    target = torch.where(mask, target.to(torch.float32), torch.zeros((), device=target.device))
    return masked_soft_bce(logits, target, mask)


def masked_soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, rows: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Cross-entropy against a target distribution, over the rows where ``rows`` is true.

    With ``temperature`` T > 1 (Hinton et al.'s distillation), both sides are softened first:
    the student's logits divided by T, the target's probabilities raised to 1/T and renormalised
    (the same as dividing the teacher's log-probabilities by T), and the loss is scaled by T² so
    its gradients keep the size they have at T = 1.

    Shapes: logits, target (batch, classes); rows (batch,) bool.
    """
    if not rows.any():
        return logits.sum() * 0.0
    logits, target = logits[rows].float(), target[rows].float()
    if temperature != 1.0:
        logits = logits / temperature
        # p^(1/T), renormalised: softmax(log p / T) without a log, so a 0 stays exactly 0.
        target = target.pow(1.0 / temperature)
        target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
    log_probs = F.log_softmax(logits, dim=-1)
    return -(target * log_probs).sum(-1).mean() * temperature**2


class MultiTaskLoss(nn.Module):
    """The weighted sum of every task's masked loss (``model.tasks.TASKS``); a head the model
    lacks contributes 0.

    ``forward(out, batch)`` takes the network's outputs (each task's logits or z-scores, and
    ``embedding``) and a batch from the data module (each task's ``target`` and ``mask`` keys)
    and returns every name of :data:`LOSS_NAMES`, each a scalar tensor. Each task's loss is its
    entry's ``loss`` in :data:`LOSSES`: cross-entropy for classes (``label_smoothing``), masked
    MSE of feature z-scores, soft BCE against teacher tags, masked BCE of hard genre tags, a soft
    cross-entropy against a Gaussian bump around the true BPM's bin for tempo (``tempo``: where
    the batch keeps it). With a teacher's soft targets in the batch, ``distill_loss`` (weighted
    by ``distill_weight``) adds every head's loss against the teacher's view of the crop.

    Args:
        weights: the loss weight of each task (:class:`LossWeights`, the spec's ``loss_weights``).
        label_smoothing: for the classification losses.
        tempo: what the tempo head is trained on (None: the model has no tempo head).
        distill_weight: weight of ``distill_loss`` (0: hard labels only).
        distill_temperature: softens the teacher's and the student's genre and mood
            distributions in ``distill_loss`` (1: as they are; see
            :func:`masked_soft_cross_entropy`). Tags and features have no distribution to soften.
    """

    def __init__(
        self,
        weights: LossWeights = LossWeights(),
        label_smoothing: float = 0.0,
        tempo: TempoTarget | None = None,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be > 0, got {distill_temperature}")
        self.temperature = distill_temperature
        self.weights = {t.loss_name: weights.weight(t.name) for t in TASKS}
        self.weights["distill_loss"] = distill_weight
        self.label_smoothing = label_smoothing
        self.tempo = tempo

    def task_loss(
        self, task: Task, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The hard-label loss of one task."""
        if task.loss == "tempo_soft_cross_entropy":
            return self._tempo_loss(out, batch)
        if task.loss == "masked_cross_entropy":
            return masked_cross_entropy(out[task.name], batch[task.target], self.label_smoothing)
        return LOSSES[task.loss](out[task.name], batch[task.target], batch[task.mask])

    def forward(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        zero = out["embedding"].sum() * 0.0
        losses = {
            t.loss_name: self.task_loss(t, out, batch)
            if t.name in out and t.target in batch
            else zero
            for t in TASKS
        }
        losses["distill_loss"] = self._distill_loss(out, batch) if "soft_genre" in batch else zero
        total = sum(self.weights[k] * v for k, v in losses.items())
        return {"loss": total, **losses}

    def _distill_loss(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The teacher's soft targets of each crop (``soft_<head>`` + ``soft_<head>_mask``, see
        ``datamodules.loading.teacher_targets``), every head weighted as its hard loss: soft
        cross-entropy for genre and mood, soft BCE for genre tags and tags, MSE of z-scores."""
        terms = []
        for t in TASKS:
            if t.soft_target is None or t.name not in out or t.soft_target not in batch:
                continue
            weight = self.weights[t.loss_name]
            soft, mask = batch[t.soft_target], batch[f"{t.soft_target}_mask"]
            if t.kind == "single_label":
                loss = masked_soft_cross_entropy(out[t.name], soft, mask.bool(), self.temperature)
                terms.append(weight * loss)
            elif t.kind == "multi_label":
                terms.append(weight * masked_soft_bce(out[t.name], soft, mask))
            else:
                terms.append(weight * masked_mse(out[t.name], soft, mask))
        return sum(terms) if terms else out["embedding"].sum() * 0.0

    def _tempo_loss(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        if self.tempo is None:
            raise ValueError("the network has a tempo head but the loss has no tempo target")
        bpm, rows = self.tempo.bpm(batch)
        return masked_soft_cross_entropy(out["tempo"], self.tempo.bins.soft_targets(bpm), rows)


#: Loss functions by the name a task's entry gives (``Task.loss``): (output, target, mask).
LOSSES = {
    "masked_mse": masked_mse,
    "masked_soft_bce": masked_soft_bce,
    "masked_genre_tag_bce": masked_genre_tag_bce,
}
