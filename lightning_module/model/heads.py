"""The linear heads on top of the clip embedding: one per task of ``model.tasks.TASKS`` that
reads the embedding. They return logits / standardised values only; softmax and sigmoid belong
to the loss and to inference."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from lightning_module.model.tasks import TASKS


class MultiTaskHeads(nn.Module):
    """One linear layer per embedding task with outputs (genre, mood, features, tags, genre tags
    in the table's order); a task with zero outputs is omitted and its key is absent.

    Args:
        embed_dim: width of the clip embedding.
        sizes: outputs per task name (a task missing or at 0 gets no head).

    Shapes: (batch, embed_dim) → {task: (batch, sizes[task])} logits or standardised values.
    """

    def __init__(self, embed_dim: int, sizes: Mapping[str, int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(
            {
                t.name: nn.Linear(embed_dim, sizes[t.name])
                for t in TASKS
                if t.input == "embedding" and sizes.get(t.name, 0) > 0
            }
        )

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(embedding) for name, head in self.heads.items()}
