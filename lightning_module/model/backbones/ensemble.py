"""Several pretrained backbones side by side on one log-mel: their embeddings concatenated.

The accurate teacher reads the frozen features of more than one pretrained tagger (MSD_musicnn and
MTT_musicnn: trained on different tags of different audio, they err differently); its heads are
linear maps of the concatenation (``lightning_module/teacher/probe.py``). As a backbone, the same
concatenation runs inside :class:`~lightning_module.model.network.TaggerNet`, so the teacher is an
ordinary checkpoint that ``predict_clip`` and ``evaluate.py`` open.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class EnsembleBackbone(nn.Module):
    """Members' embeddings, concatenated in order.

    Args:
        members: backbones that read the same log-mel (``musicnn``-family: 96 bands, 16 kHz), each
            with ``embed_dim`` and ``frontend_modules()``; the first one's ``tag_head`` is the
            ensemble's taggram (its tag names are the checkpoint's).

    Shapes: (batch, 1, n_mels, frames) → (batch, sum of the members' ``embed_dim``).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble backbone needs at least one member")
        self.members = nn.ModuleList(members)
        self.embed_dim = sum(int(m.embed_dim) for m in members)

    @property
    def taggram_dim(self) -> int:
        """Columns of the embedding the first member's taggram reads (its first ones)."""
        return int(self.members[0].taggram_dim)

    @property
    def tag_head(self) -> nn.Linear:
        """The first member's own tag head."""
        return self.members[0].tag_head

    def frontend_modules(self) -> list[nn.Module]:
        return [m for member in self.members for m in member.frontend_modules()]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(spec) for member in self.members], dim=1)
