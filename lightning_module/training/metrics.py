"""Metrics of one split (train, val or test), from torchmetrics: genre/mood accuracy and macro-F1,
per-feature R² and Pearson r, per-tag ROC-AUC against the teacher, per-genre-tag ROC-AUC and PR-AUC,
and mean losses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAUROC,
    MultilabelAveragePrecision,
    MultilabelStatScores,
)
from torchmetrics.regression import PearsonCorrCoef, R2Score

from datamodules.analysis.key import KEY_NAMES, mirex_scores
from datamodules.analysis.tempo import tempo_accuracy
from datamodules.schema import IGNORE_INDEX
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS, loss_names
from lightning_module.model.tempo import TempoTarget

#: A teacher probability above this counts as a positive tag for the per-tag ROC-AUC.
TEACHER_POSITIVE = 0.5


class SplitMetrics(nn.Module):
    """Everything logged for one split; :meth:`update` per batch, :meth:`compute` per epoch.

    Args:
        genre_names, mood_names: classes (a task with fewer than two classes gets no metric).
        feature_names: regression targets (R² and r on the standardised values).
        tag_names: teacher tags (ROC-AUC, binned with 200 thresholds: constant memory).
        with_losses: keep weighted means of the losses (eval splits; training logs its own).
        tempo: where batches keep the tempo, for the tempo head's Acc1 / Acc2 (within 4 %; or of
            an octave / a third), the standard tempo-estimation scores.
        genre_tag_names: multi-label genre tags (ROC-AUC and PR-AUC per tag, binned with 200
            thresholds; rows without genre tags are ignored).
        class_names: label names of further single-label tasks (``model.tasks.TASKS``), by
            task name: accuracy and macro-F1 like genre and mood.
        key_names: the key head's 24 keys (accuracy, macro-F1 and the MIREX weighted score,
            where a fifth scores 0.5, the relative key 0.3, the parallel key 0.2).
    """

    def __init__(
        self,
        genre_names: Sequence[str],
        mood_names: Sequence[str],
        feature_names: Sequence[str],
        tag_names: Sequence[str],
        with_losses: bool = True,
        tempo: TempoTarget | None = None,
        genre_tag_names: Sequence[str] = (),
        key_names: Sequence[str] = (),
        class_names: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.tempo = tempo
        self.tempo_acc = nn.ModuleDict(
            {"acc1": MeanMetric(), "acc2": MeanMetric()} if tempo is not None else {}
        )
        self.feature_names = list(feature_names)
        self.tag_names = list(tag_names)
        classes: dict[str, nn.Module] = {}
        single = {"genre": genre_names, "mood": mood_names, "key": key_names, **(class_names or {})}
        tasks = [t.name for t in TASKS if t.kind == "single_label" and t.name in single]
        for task, names in ((name, single[name]) for name in tasks):
            if len(names) > 1:
                n = len(names)
                classes[task] = MetricCollection(
                    {
                        "acc": MulticlassAccuracy(n, average="micro", ignore_index=IGNORE_INDEX),
                        "f1": MulticlassF1Score(n, average="macro", ignore_index=IGNORE_INDEX),
                    }
                )
        self.classes = nn.ModuleDict(classes)
        self.key_mirex = MeanMetric() if len(key_names) == len(KEY_NAMES) else None
        self.r2 = nn.ModuleDict({name: R2Score() for name in self.feature_names})
        self.pearson = nn.ModuleDict({name: PearsonCorrCoef() for name in self.feature_names})
        # torchmetrics' multilabel metrics need two labels or more: one tag gets an ignored twin.
        n_tags = max(len(self.tag_names), 2) if self.tag_names else 0
        self.tags = nn.ModuleDict(
            {
                "auroc": MultilabelAUROC(
                    n_tags, average=None, thresholds=200, ignore_index=IGNORE_INDEX
                ),
                "stats": MultilabelStatScores(n_tags, average=None, ignore_index=IGNORE_INDEX),
            }
            if n_tags
            else {}
        )
        self.losses = nn.ModuleDict({k: MeanMetric() for k in loss_names()} if with_losses else {})
        # The genre-tag head: hard 0/1 AllMusic genre tags, masked rows ignored.
        self.genre_tag_names = list(genre_tag_names)
        n_genre_tags = max(len(self.genre_tag_names), 2) if self.genre_tag_names else 0
        self.genre_tags = nn.ModuleDict(
            {
                "auroc": MultilabelAUROC(
                    n_genre_tags, average=None, thresholds=200, ignore_index=IGNORE_INDEX
                ),
                "ap": MultilabelAveragePrecision(
                    n_genre_tags, average=None, thresholds=200, ignore_index=IGNORE_INDEX
                ),
                "stats": MultilabelStatScores(
                    n_genre_tags, average=None, ignore_index=IGNORE_INDEX
                ),
            }
            if n_genre_tags
            else {}
        )

    @classmethod
    def for_spec(
        cls, spec: TaggerSpec, tempo: TempoTarget | None = None, with_losses: bool = True
    ) -> SplitMetrics:
        """The metrics of a model with this spec."""
        names = (spec.genre_names, spec.mood_names, spec.feature_names, spec.tag_names)
        return cls(
            *names,
            with_losses=with_losses,
            tempo=tempo,
            genre_tag_names=spec.genre_tag_names,
            key_names=spec.key_names,
            class_names={t.name: spec.names(t.name) for t in TASKS if t.kind == "single_label"},
        )

    @torch.no_grad()
    def update(
        self,
        out: Mapping[str, torch.Tensor],
        batch: Mapping[str, torch.Tensor],
        losses: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Add one batch: network outputs, the batch's targets and (eval) its losses."""
        for task, metric in self.classes.items():
            if task in out and task in batch:
                metric.update(out[task].detach(), batch[task])
        if self.key_mirex is not None and "key" in out and "key" in batch:
            rows = batch["key"] != IGNORE_INDEX
            if rows.any():
                estimate = out["key"][rows].detach().argmax(-1).cpu().numpy()
                scores = mirex_scores(estimate, batch["key"][rows].cpu().numpy())
                self.key_mirex.update(torch.tensor(scores["weighted"]), weight=int(rows.sum()))
        if "features" in out:
            mask = batch["feature_mask"]
            for j, name in enumerate(self.feature_names):
                rows = mask[:, j]
                if rows.any():
                    pred = out["features"][rows, j].detach().float()
                    target = batch["features"][rows, j]
                    self.r2[name].update(pred, target)
                    self.pearson[name].update(pred, target)
        if self.tags and "tags" in out:
            # The teacher's soft targets binarised; entries without a teacher value are ignored.
            target = (batch["tags"] > TEACHER_POSITIVE).long()
            target = target.masked_fill(~batch["tag_mask"].bool(), IGNORE_INDEX)
            probs, target = _with_twin(out["tags"].detach().float().sigmoid(), target)
            self.tags["auroc"].update(probs, target)
            self.tags["stats"].update(probs, target)
        if self.genre_tags and "genre_tags" in out:
            target = batch["genre_tags"].round().long()
            mask = batch["genre_tag_mask"].bool()
            if mask.dim() == 1:  # one mask per row: broadcast over the tags
                mask = mask[:, None].expand_as(target)
            target = target.masked_fill(~mask, IGNORE_INDEX)
            probs, target = _with_twin(out["genre_tags"].detach().float().sigmoid(), target)
            for metric in self.genre_tags.values():
                metric.update(probs, target)
        if self.tempo is not None and "tempo" in out:
            bpm, rows = self.tempo.bpm(batch)
            if rows.any():
                estimate = self.tempo.bins.decode(out["tempo"][rows].detach().float().softmax(-1))
                acc1, acc2 = tempo_accuracy(estimate, bpm[rows].cpu().numpy())
                self.tempo_acc["acc1"].update(torch.from_numpy(acc1).float())
                self.tempo_acc["acc2"].update(torch.from_numpy(acc2).float())
        if losses is not None and self.losses:
            weight = len(batch["audio"])
            for k, mean in self.losses.items():
                mean.update(losses[k].detach(), weight=weight)

    def compute(self, split: str) -> dict[str, torch.Tensor]:
        """Every defined value under ``{split}/...`` names, then reset for the next epoch."""
        values: dict[str, torch.Tensor] = {}
        for k, mean in self.losses.items():
            if mean.update_count:
                values[f"{split}/{k}"] = mean.compute()
        for task, metric in self.classes.items():
            if metric[next(iter(metric.keys(keep_base=True)))].update_count:
                for k, v in metric.compute().items():
                    values[f"{split}/{task}_{k}"] = v
        for prefix, family in (("r2", self.r2), ("r", self.pearson)):
            for name, metric in family.items():
                if metric.update_count and _enough_samples(metric):
                    v = metric.compute()
                    if torch.isfinite(v):
                        values[f"{split}/{prefix}/{name}"] = v
        r2 = [v for k, v in values.items() if k.startswith(f"{split}/r2/")]
        if r2:
            values[f"{split}/feature_r2_mean"] = torch.stack(
                [torch.as_tensor(v) for v in r2]
            ).mean()
        if self.key_mirex is not None and self.key_mirex.update_count:
            values[f"{split}/key_mirex"] = self.key_mirex.compute()
        for k, mean in self.tempo_acc.items():
            if mean.update_count:
                values[f"{split}/tempo_{k}"] = mean.compute()
        values.update(self._tag_auc(split))
        values.update(self._genre_tag_scores(split))
        self.reset()
        return values

    def _tag_auc(self, split: str) -> dict[str, torch.Tensor]:
        """Per-tag ROC-AUC against the teacher, and their mean over tags where it is defined."""
        if not self.tags or not self.tags["auroc"].update_count:
            return {}
        auc = self.tags["auroc"].compute()
        tp, fp, tn, fn, _ = self.tags["stats"].compute().unbind(-1)
        # A tag the teacher gives to every window, or to none, has no AUC in this split.
        defined = ((tp + fn) > 0) & ((fp + tn) > 0)
        values = {
            f"{split}/tag_auc/{name}": auc[i] for i, name in enumerate(self.tag_names) if defined[i]
        }
        if defined.any():
            values[f"{split}/tag_auc_mean"] = auc[defined].mean()
        return values

    def _genre_tag_scores(self, split: str) -> dict[str, torch.Tensor]:
        """Per genre tag ROC-AUC and PR-AUC (``{split}/genre_tag_auc/<name>``,
        ``{split}/genre_tag_ap/<name>``) and their means over the tags this split defines: a tag
        with no positive or no negative row here is left out."""
        if not self.genre_tags or not self.genre_tags["auroc"].update_count:
            return {}
        tp, fp, tn, fn, _ = self.genre_tags["stats"].compute().unbind(-1)
        defined = ((tp + fn) > 0) & ((fp + tn) > 0)
        if not defined.any():
            return {}
        values: dict[str, torch.Tensor] = {}
        for key in ("auc", "ap"):
            scores = self.genre_tags["auroc" if key == "auc" else "ap"].compute()
            for i, name in enumerate(self.genre_tag_names):
                if defined[i]:
                    values[f"{split}/genre_tag_{key}/{name}"] = scores[i]
            values[f"{split}/genre_tag_{key}_mean"] = scores[defined].mean()
        return values

    def reset(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset") and hasattr(module, "update_count"):
                module.reset()


def _with_twin(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, 1) probabilities and targets of a single tag with an ignored second column (see
    ``__init__``); any other width unchanged."""
    if probs.shape[1] != 1:
        return probs, target
    twin = torch.full_like(target, IGNORE_INDEX)
    return torch.cat([probs, torch.zeros_like(probs)], 1), torch.cat([target, twin], 1)


def _enough_samples(metric: nn.Module) -> bool:
    """R² and Pearson r need at least two samples; fewer gives NaN and a warning."""
    n = getattr(metric, "total", None)
    if n is None:
        n = getattr(metric, "n_total", None)
    return n is None or float(torch.as_tensor(n).sum()) >= 2
