"""The whole model as one pure ``nn.Module``: waveform → log-mel → backbone → heads.

``MusicTagger`` trains it; ``inference`` and ONNX export rebuild it from a checkpoint's saved
hyperparameters with :func:`build_network`, without importing Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lightning_module.backbone import ResNetBackbone
from lightning_module.backbones.musicnn import MusicnnBackbone
from lightning_module.frontend import LogMel, SpecAugment
from lightning_module.heads import MultiTaskHeads

FRONTEND_KEYS = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "compression")


class TaggerNet(nn.Module):
    """Waveform in, every head out.

    Shapes: (batch, samples) float at ``sample_rate`` → dict of (batch, n) tensors (see
    :class:`MultiTaskHeads`) plus ``"embedding"`` (batch, embed_dim).

    ``channels_last`` stores the backbone's 4-D weights and the spectrogram in NHWC order, the
    layout tensor cores and oneDNN convolve fastest; it changes no value and no state-dict key.
    """

    def __init__(
        self,
        frontend: LogMel,
        spec_augment: SpecAugment,
        backbone: nn.Module,
        heads: MultiTaskHeads,
        channels_last: bool = False,
    ):
        super().__init__()
        self.frontend = frontend
        self.spec_augment = spec_augment
        self.backbone = backbone
        self.heads = heads
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def forward(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = self.spec_augment(self.frontend(wave))
        if self.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        embedding = self.backbone(spec)
        return {**self.heads(embedding), "embedding": embedding}


def build_backbone(name: str, hp: Mapping[str, Any]) -> nn.Module:
    """The backbone called ``name``, configured from hyperparameters ``hp``."""
    if name == "resnet":
        return ResNetBackbone(
            width=hp["width"],
            blocks=tuple(hp["blocks"]),
            embed_dim=hp["embed_dim"],
            dropout=hp["dropout"],
        )
    if name == "musicnn":
        return MusicnnBackbone(n_mels=hp["n_mels"], dropout=hp["dropout"])
    raise ValueError(f"unknown backbone {name!r} (known: resnet, musicnn)")


def build_network(hp: Mapping[str, Any]) -> TaggerNet:
    """Build a :class:`TaggerNet` from ``MusicTagger``'s saved hyperparameters."""
    backbone = build_backbone(hp["backbone"], hp)
    return TaggerNet(
        frontend=LogMel(
            **{k: hp[k] for k in FRONTEND_KEYS},
            # Older checkpoints predate these two keys: torchaudio's defaults then.
            norm=hp.get("mel_norm"),
            mel_scale=hp.get("mel_scale") or "htk",
        ),
        spec_augment=SpecAugment(hp["freq_mask"], hp["time_mask"], hp["n_masks"]),
        backbone=backbone,
        heads=MultiTaskHeads(
            backbone.embed_dim,
            n_genres=len(hp["genre_names"]),
            n_moods=len(hp["mood_names"]),
            n_features=len(hp["feature_names"]),
            n_tags=len(hp.get("tag_names") or []),
        ),
        channels_last=bool(hp.get("channels_last", False)),
    )
