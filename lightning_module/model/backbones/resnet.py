"""A residual CNN over log-mel spectrograms that returns one embedding per clip."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3×3 conv-BN layers with a skip connection; ``stride`` 2 halves both axes.

    Shapes: (batch, in_channels, F, T) → (batch, out_channels, F / stride, T / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNetBackbone(nn.Module):
    """Short-chunk residual CNN (in the spirit of Won et al. 2020) → clip embedding.

    A strided stem, ``len(blocks)`` stages that double the channels and halve the resolution, then
    mean over frequency and mean+max over time (max keeps short salient events such as a vocal
    entry), projected to ``embed_dim``.

    Args:
        width: channels of the first stage.
        blocks: residual blocks per stage.
        embed_dim: size of the returned embedding.
        dropout: dropout before the projection.

    Shapes: (batch, 1, n_mels, frames) → (batch, embed_dim).
    """

    #: The block of every stage: ``block(in_channels, out_channels, stride)``; and the stem's
    #: activation. A subclass swaps them (``MobileNetBackbone``) and keeps the rest.
    block: type[nn.Module] = ResidualBlock
    activation: type[nn.Module] = nn.ReLU

    def __init__(
        self,
        width: int = 32,
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        embed_dim: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            self.activation(inplace=True),
        )
        stages, channels = [], width
        for i, n in enumerate(blocks):
            out = width * 2**i
            stage = [self.block(channels, out, 1 if i == 0 else 2)]
            stage += [self.block(out, out, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.project = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * channels, embed_dim), nn.ReLU(inplace=True)
        )

    def frontend_modules(self) -> list[nn.Module]:
        """The input BatchNorm and the strided stem (``--model.freeze frontend``)."""
        return [self.input_norm, self.stem]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.input_norm(spec)))
        x = x.mean(dim=2)  # (batch, channels, frames)
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)
        return self.project(pooled)
