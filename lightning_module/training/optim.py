"""The learning-rate schedule: linear warm-up, then cosine decay to 2 % of the peak."""

from __future__ import annotations

import math

import torch

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
