"""A MobileNetV3-style CNN over log-mel spectrograms (in the spirit of EfficientAT, Schmid et al.
2023): inverted residual blocks with depthwise 3×3 convolutions and squeeze-and-excitation, which
buy a wider network for the compute of a narrow residual one."""

from __future__ import annotations

import torch
from torch import nn

from lightning_module.model.backbones.resnet import ResNetBackbone


class SqueezeExcite(nn.Module):
    """Channel gates from the block's mean activation. Shapes: (B, C, F, T) → same."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Hardsigmoid(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    """1×1 expansion, depthwise 3×3 (``stride`` 2 halves both axes), squeeze-excite, 1×1
    projection; a skip connection when the shape is kept.

    Shapes: (B, in_channels, F, T) → (B, out_channels, F / stride, T / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(inplace=True),
            SqueezeExcite(hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetBackbone(ResNetBackbone):
    """The residual CNN's layout (strided stem, ``len(blocks)`` stages that double the channels
    and halve the resolution, mean over frequency and mean + max over time, projection) with
    inverted residual blocks and hard-swish: wider for the same compute.

    Args:
        width: channels of the first stage (the stem has ``width`` too).
        blocks: inverted residual blocks per stage.
        embed_dim: size of the returned embedding.
        dropout: dropout before the projection.

    Shapes: (batch, 1, n_mels, frames) → (batch, embed_dim).
    """

    block = InvertedResidual
    activation = nn.Hardswish

    def __init__(
        self,
        width: int = 16,
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        embed_dim: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(width=width, blocks=blocks, embed_dim=embed_dim, dropout=dropout)
