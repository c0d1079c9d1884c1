"""Backbones by name: how to build each from a :class:`TaggerSpec`, the hyperparameters it
dictates, and how it starts from pretrained weights.

Adding a backbone is a module in this folder plus one :class:`Backbone` entry in
:data:`BACKBONES`; ``--model.backbone NAME`` then selects it and checkpoints rebuild it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lightning_module.model.backbones.ensemble import EnsembleBackbone
from lightning_module.model.backbones.mobilenet import MobileNetBackbone
from lightning_module.model.backbones.musicnn import (
    MUSICNN_FRONTEND,
    MUSICNN_SAMPLE_RATE,
    MusicnnBackbone,
    init_from_pretrained,
)
from lightning_module.model.backbones.musicnn_vgg import MusicnnVggBackbone
from lightning_module.model.backbones.pretrained import init_vgg_from_pretrained
from lightning_module.model.backbones.resnet import ResNetBackbone
from lightning_module.model.settings import changes_said, plain
from lightning_module.model.spec import TaggerSpec

#: init(backbone, weights_path, tag_head_or_None, tag_names): load pretrained weights in place.
PretrainedInit = Callable[[nn.Module, str, nn.Module | None, Sequence[str]], None]
#: The input every musicnn-based backbone dictates: its pretrained weights only mean anything on it.
MUSICNN_INPUT: dict[str, Any] = {"sample_rate": MUSICNN_SAMPLE_RATE, "logmel": MUSICNN_FRONTEND}


@dataclass(frozen=True)
class Backbone:
    """One registered backbone.

    Attributes:
        build: the ``nn.Module`` for a spec; it maps (batch, 1, n_mels, frames) log-mel to
            (batch, embed_dim) and has ``embed_dim`` and ``frontend_modules()``.
        fixed: hyperparameters the backbone dictates (its pretrained weights only make sense on
            that input, or its embedding has that size), a group (``logmel``) as a whole; the CLI
            writes them into the config, so the saved config and the checkpoint agree.
        init_pretrained: loads ``--model.pretrained`` weights, or None if it has none.
    """

    build: Callable[[TaggerSpec], nn.Module]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    init_pretrained: PretrainedInit | None = None


def _pretrained_tagger(cls: type[nn.Module], init: Callable, pooled: bool = False) -> Backbone:
    """A musicnn tagger's entry: musicnn's input and embedding size fixed, weights from
    ``--model.pretrained``; ``pooled`` appends the time-pooled front/mid-end features."""
    return Backbone(
        build=lambda spec: cls(
            n_mels=spec.logmel.n_mels, dropout=spec.dropout, pooled_embedding=pooled
        ),
        fixed={**MUSICNN_INPUT, "embed_dim": cls.EMBED_DIM},
        init_pretrained=init,
    )


BACKBONES: dict[str, Backbone] = {
    "resnet": Backbone(
        build=lambda spec: ResNetBackbone(
            width=spec.width, blocks=spec.blocks, embed_dim=spec.embed_dim, dropout=spec.dropout
        )
    ),
    # Inverted residual blocks (EfficientAT-style): wider for the compute of the residual CNN.
    "mobilenet": Backbone(
        build=lambda spec: MobileNetBackbone(
            width=spec.width, blocks=spec.blocks, embed_dim=spec.embed_dim, dropout=spec.dropout
        )
    ),
    "musicnn": _pretrained_tagger(MusicnnBackbone, init_from_pretrained),
    # The same network whose embedding also carries its time-pooled front/mid-end features: what
    # the accurate teacher's heads read (lightning_module/teacher/probe.py), frozen.
    "musicnn_pooled": _pretrained_tagger(MusicnnBackbone, init_from_pretrained, pooled=True),
    # musicnn's VGG taggers (MSD_vgg / MTT_vgg) on the same input: a second, different teacher.
    "musicnn_vgg": _pretrained_tagger(MusicnnVggBackbone, init_vgg_from_pretrained),
    "musicnn_vgg_pooled": _pretrained_tagger(
        MusicnnVggBackbone, init_vgg_from_pretrained, pooled=True
    ),
    # Several of the above side by side (spec.backbone_members, in order), embeddings concatenated:
    # the accurate teacher that reads more than one pretrained tagger (teacher/probe.py).
    "ensemble": Backbone(
        build=lambda spec: EnsembleBackbone(
            [get_backbone(name).build(spec) for name in spec.backbone_members]
        ),
        fixed=MUSICNN_INPUT,
    ),
}


def get_backbone(name: str) -> Backbone:
    """The registered backbone ``name``; ValueError (one line, listing the known ones) if none."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (known: {', '.join(sorted(BACKBONES))})")
    return BACKBONES[name]


def dictated_changes(
    name: str, hparams: Mapping[str, Any], log: logging.Logger | None = None
) -> dict[str, Any]:
    """The hyperparameters backbone ``name`` dictates that ``hparams`` has otherwise, as plain
    values (a group, ``logmel``, as its whole dict); the fields that change are logged on ``log``
    when given (``logmel.compression=log1p``).

    Raises:
        ValueError: the sample rate differs: it comes from the data, so the user must set it.
    """
    fixed = get_backbone(name).fixed
    if (
        "sample_rate" in fixed
        and hparams.get("sample_rate", fixed["sample_rate"]) != (fixed["sample_rate"])
    ):
        raise ValueError(
            f"the {name} backbone needs sample_rate {fixed['sample_rate']}, "
            f"not {hparams.get('sample_rate')} (set --data.sample_rate)"
        )
    changed = {k: plain(v) for k, v in fixed.items() if plain(hparams.get(k)) != plain(v)}
    if changed and log is not None:
        log.info("%s backbone: %s", name, ", ".join(changes_said(hparams, changed)))
    return changed


def freeze_modules(backbone: nn.Module, freeze: str) -> list[nn.Module]:
    """Stop gradients into the part of ``backbone`` that ``freeze`` names and put it in eval mode
    (its BatchNorm keeps the pretrained statistics); return those modules.

    ``none``; ``frontend``: ``backbone.frontend_modules()`` (fine-tuning on little data);
    ``backbone``: all of it (a linear probe of the embedding). Lightning never calls ``train()``
    itself and restores each module's own mode after validation, so this lasts for the whole fit.
    """
    modules = {
        "none": [],
        "backbone": [backbone],
        "frontend": list(backbone.frontend_modules()),
    }.get(freeze)
    if modules is None:
        raise ValueError(f"--model.freeze must be none, frontend or backbone, not {freeze!r}")
    for module in modules:
        module.requires_grad_(False)
        module.eval()
    return modules
