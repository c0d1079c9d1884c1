"""The optimiser: AdamW (no decay on biases and norms) with a linear warm-up, then cosine decay
to 2 % of the peak learning rate, stepped every batch."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

#: The schedule ends at this fraction of the peak learning rate.
FINAL_FRACTION = 0.02


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over ``total_steps``, the first ``warmup_fraction`` of them warming up.

    A LambdaLR (not OneCycleLR) because its length is recomputed on resume: a run resumed with a
    larger ``max_epochs`` keeps going instead of failing past the old end.
    """
    warmup = max(1, int(warmup_fraction * total_steps))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _group_order(group: tuple[tuple[float, bool], list[nn.Parameter]]) -> tuple[float, bool]:
    (scale, decays), _ = group
    return -scale, not decays


def adamw_warmup_cosine(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float,
    warmup_fraction: float,
    total_steps: float,
    lr_scales: Mapping[int, float] | None = None,
) -> dict[str, Any]:
    """What ``configure_optimizers`` returns: AdamW whose weight decay skips biases and norm
    weights, and :func:`warmup_cosine` over ``total_steps`` (none when that is unknown).

    ``lr_scales`` maps ``id(parameter)`` to a factor on ``lr`` for that parameter (discriminative
    fine-tuning: a pretrained front-end learns slower than the layers above it); the schedule
    scales every group alike, so the ratio holds for the whole run. Groups keep the order
    (full rate first; decayed, then not), so a run without scales resumes older checkpoints.
    """
    lr_scales = lr_scales or {}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in named_parameters:
        decays = not (param.ndim <= 1 or name.endswith(".bias"))
        groups.setdefault((lr_scales.get(id(param), 1.0), decays), []).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": params, "lr": lr * scale, "weight_decay": weight_decay if decays else 0.0}
            for (scale, decays), params in sorted(groups.items(), key=_group_order)
        ],
        lr=lr,
    )
    if not math.isfinite(total_steps) or total_steps <= 1:
        return {"optimizer": optimizer}
    scheduler = warmup_cosine(optimizer, int(total_steps), warmup_fraction)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
