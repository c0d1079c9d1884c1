"""The whole model as one pure ``nn.Module``: waveform → log-mel → backbone → heads.

``MusicTagger`` trains it; ``inference`` and ONNX export rebuild it from a checkpoint's saved
hyperparameters (a :class:`TaggerSpec`) with :func:`build_network`, without importing Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lightning_module.model.backbones.registry import get_backbone
from lightning_module.model.frontend import LogMel, SpecAugment
from lightning_module.model.heads import MultiTaskHeads
from lightning_module.model.key import key_branch
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS
from lightning_module.model.tempo import tempo_branch

#: Builders of the heads that are modules of their own (``Task.input`` not ``embedding``), by
#: task name: spec → module, or None when the model has no such head.
BRANCHES: dict[str, Callable[[TaggerSpec], nn.Module | None]] = {
    "tempo": tempo_branch,
    "key": key_branch,
}


class TaggerNet(nn.Module):
    """Waveform in, every head out.

    Shapes: (batch, samples) float at ``sample_rate`` → dict of (batch, n) tensors (see
    :class:`MultiTaskHeads`) plus ``"embedding"`` (batch, embed_dim) and one output per branch
    (a task reading the log-mel or the waveform): ``"tempo"`` (batch, tempo_bins) logits (see
    ``model.tempo.TempoBranch``), ``"key"`` (batch, 24) logits (``model.key.KeyBranch``).
    Branches are attributes named after their task, so their state-dict keys are ``tempo.*``,
    ``key.*``.

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
        branches: Mapping[str, nn.Module | None] | None = None,
    ):
        super().__init__()
        self.frontend = frontend
        self.spec_augment = spec_augment
        self.backbone = backbone
        self.heads = heads
        self.branch_inputs: dict[str, str] = {}
        for t in TASKS:
            module = (branches or {}).get(t.name)
            if module is not None:
                setattr(self, t.name, module)
                self.branch_inputs[t.name] = t.input
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def forward(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        mel = self.frontend(wave)
        spec = self.spec_augment(mel)
        if self.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        embedding = self.backbone(spec)
        out = {**self.heads(embedding), "embedding": embedding}
        # Branches read the unmasked log-mel (a time mask would fake onsets) or the waveform.
        inputs = {"mel": mel, "wave": wave}
        for name, source in self.branch_inputs.items():
            out[name] = getattr(self, name)(inputs[source])
        return out


def build_network(spec: TaggerSpec | Mapping[str, Any]) -> TaggerNet:
    """Build a :class:`TaggerNet` from a spec (or a checkpoint's saved hyperparameters)."""
    if not isinstance(spec, TaggerSpec):
        spec = TaggerSpec.from_hparams(spec)
    backbone = get_backbone(spec.backbone).build(spec)
    return TaggerNet(
        frontend=LogMel(spec.logmel, spec.sample_rate),
        spec_augment=SpecAugment(spec.freq_mask, spec.time_mask, spec.n_masks),
        backbone=backbone,
        heads=MultiTaskHeads(backbone.embed_dim, {t.name: len(spec.names(t.name)) for t in TASKS}),
        channels_last=spec.channels_last,
        branches={name: build(spec) for name, build in BRANCHES.items()},
    )
