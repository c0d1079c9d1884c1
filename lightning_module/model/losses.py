"""Masked multi-task losses. Every loss takes logits (or z-scores) and ignores missing targets,
so rows labelled for one head only (GTZAN: genre; 4Q: mood; a table: features) mix in a batch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.schema import IGNORE_INDEX
from lightning_module.model.tempo import TempoTarget

#: Loss names :class:`MultiTaskLoss` returns, the weighted total first.
LOSS_NAMES: tuple[str, ...] = (
    "loss",
    "genre_loss",
    "mood_loss",
    "feature_loss",
    "tag_loss",
    "tempo_loss",
    "genre_tag_loss",
    "distill_loss",
)


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
    logits: torch.Tensor, target: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy against a target distribution, over the rows where ``rows`` is true.

    Shapes: logits, target (batch, classes); rows (batch,) bool.
    """
    if not rows.any():
        return logits.sum() * 0.0
    log_probs = F.log_softmax(logits[rows].float(), dim=-1)
    return -(target[rows] * log_probs).sum(-1).mean()


class MultiTaskLoss(nn.Module):
    """The weighted sum of every head's masked loss; a head the model lacks contributes 0.

    ``forward(out, batch)`` takes the network's outputs (``genre``/``mood`` logits, ``features``
    z-scores, ``tags`` logits, ``embedding``) and a batch from the data module (``genre``,
    ``mood``, ``features`` + ``feature_mask``, ``tags`` + ``tag_mask``) and returns every name of
    :data:`LOSS_NAMES`, each a scalar tensor. The tempo head learns a Gaussian bump around the
    true BPM's log-spaced bin (``tempo``: where the batch keeps the tempo). The genre-tag head
    (``genre_tags`` logits) learns hard 0/1 AllMusic genre tags (``genre_tags`` +
    ``genre_tag_mask``), masked on rows without any (``genre_tag_weight``). With a teacher's
    soft targets in the batch, ``distill_loss`` (weighted by ``distill_weight``) adds every head's
    loss against the teacher's view of the crop.
    """

    def __init__(
        self,
        genre_weight: float = 1.0,
        mood_weight: float = 1.0,
        feature_weight: float = 1.0,
        tag_weight: float = 1.0,
        label_smoothing: float = 0.0,
        tempo_weight: float = 1.0,
        tempo: TempoTarget | None = None,
        genre_tag_weight: float = 1.0,
        distill_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.weights = {
            "genre_loss": genre_weight,
            "mood_loss": mood_weight,
            "feature_loss": feature_weight,
            "tag_loss": tag_weight,
            "tempo_loss": tempo_weight,
        }
        self.weights["genre_tag_loss"] = genre_tag_weight
        self.weights["distill_loss"] = distill_weight
        self.label_smoothing = label_smoothing
        self.tempo = tempo

    def forward(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        zero = out["embedding"].sum() * 0.0
        smoothing = self.label_smoothing
        losses = {
            "genre_loss": masked_cross_entropy(out["genre"], batch["genre"], smoothing)
            if "genre" in out
            else zero,
            "mood_loss": masked_cross_entropy(out["mood"], batch["mood"], smoothing)
            if "mood" in out
            else zero,
            "feature_loss": masked_mse(out["features"], batch["features"], batch["feature_mask"])
            if "features" in out
            else zero,
            "tag_loss": masked_soft_bce(out["tags"], batch["tags"], batch["tag_mask"])
            if "tags" in out
            else zero,
            "tempo_loss": self._tempo_loss(out, batch) if "tempo" in out else zero,
        }
        losses["genre_tag_loss"] = (
            masked_genre_tag_bce(out["genre_tags"], batch["genre_tags"], batch["genre_tag_mask"])
            if "genre_tags" in out
            else zero
        )
        losses["distill_loss"] = self._distill_loss(out, batch) if "soft_genre" in batch else zero
        total = sum(self.weights[k] * v for k, v in losses.items())
        return {"loss": total, **losses}

    def _distill_loss(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The teacher's soft targets of each crop (``soft_<head>`` + ``soft_<head>_mask``, see
        ``datamodules.loading.teacher_targets``), every head weighted as its hard loss: soft
        cross-entropy for genre and mood, soft BCE for genre tags and tags, MSE of z-scores."""
        w = self.weights
        terms = []
        for head, weight in (("genre", w["genre_loss"]), ("mood", w["mood_loss"])):
            if head in out:
                rows = batch[f"soft_{head}_mask"].bool()
                terms.append(
                    weight * masked_soft_cross_entropy(out[head], batch[f"soft_{head}"], rows)
                )
        for head, weight in (("genre_tags", w["genre_tag_loss"]), ("tags", w["tag_loss"])):
            if head in out:
                mask = batch[f"soft_{head}_mask"]
                terms.append(weight * masked_soft_bce(out[head], batch[f"soft_{head}"], mask))
        if "features" in out:
            mask = batch["soft_features_mask"]
            terms.append(
                w["feature_loss"] * masked_mse(out["features"], batch["soft_features"], mask)
            )
        return sum(terms) if terms else out["embedding"].sum() * 0.0

    def _tempo_loss(
        self, out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        if self.tempo is None:
            raise ValueError("the network has a tempo head but the loss has no tempo target")
        bpm, rows = self.tempo.bpm(batch)
        return masked_soft_cross_entropy(out["tempo"], self.tempo.bins.soft_targets(bpm), rows)
