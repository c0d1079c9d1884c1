"""The task heads on top of the clip embedding. They return logits / standardised values only;
softmax and sigmoid belong to the loss and to inference."""

from __future__ import annotations

import torch
from torch import nn


class MultiTaskHeads(nn.Module):
    """Linear heads for genre, mood, audio features and (optionally) teacher tags and
    multi-label genre tags.

    A head with zero outputs is omitted and its key is absent from the result.

    Shapes: (batch, embed_dim) → {"genre": (batch, n_genres) logits, "mood": (batch, n_moods)
    logits,
    "features": (batch, n_features) standardised values, "tags": (batch, n_tags) logits,
    "genre_tags": (batch, n_genre_tags) logits}.
    """

    def __init__(
        self,
        embed_dim: int,
        n_genres: int,
        n_moods: int,
        n_features: int,
        n_tags: int = 0,
        n_genre_tags: int = 0,
    ) -> None:
        super().__init__()
        sizes = {"genre": n_genres, "mood": n_moods, "features": n_features, "tags": n_tags}
        sizes["genre_tags"] = n_genre_tags
        self.heads = nn.ModuleDict(
            {name: nn.Linear(embed_dim, n) for name, n in sizes.items() if n > 0}
        )

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(embedding) for name, head in self.heads.items()}
