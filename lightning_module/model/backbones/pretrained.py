"""Which backbone class holds a converted musicnn file, and that backbone with its weights loaded.

``scripts/convert_musicnn.py`` writes ``{"state_dict", "tag_names", "model"}`` for any of the four
taggers of the ``musicnn`` wheel; ``"model"`` (``MSD_musicnn``, ``MTT_musicnn``, ``MSD_vgg``,
``MTT_vgg``) names the architecture. Files written before the VGG ports carry no ``"model"`` or a
``*_musicnn`` one: they are :class:`MusicnnBackbone` files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from lightning_module.model.backbones.musicnn import (
    MusicnnBackbone,
    init_from_pretrained,
    load_pretrained,
    load_weights,
)
from lightning_module.model.backbones.musicnn_vgg import MusicnnVggBackbone

#: Architecture (the suffix of musicnn's model names) → backbone class.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "musicnn": MusicnnBackbone,
    "vgg": MusicnnVggBackbone,
}


def architecture(model: str) -> str:
    """``"MSD_vgg"`` → ``"vgg"``; ValueError (one line) for a name of no known architecture."""
    suffix = model.rsplit("_", 1)[-1]
    if suffix not in ARCHITECTURES:
        raise ValueError(
            f"unknown musicnn model {model!r} (architectures: {', '.join(ARCHITECTURES)})"
        )
    return suffix


def backbone_class(data: Mapping[str, Any]) -> type[nn.Module]:
    """The class whose state dict a :func:`load_pretrained` result holds (no ``"model"``: the
    original musicnn)."""
    return ARCHITECTURES[architecture(str(data.get("model") or "MSD_musicnn"))]


def build_pretrained_backbone(
    weights_file: str | os.PathLike, pooled_embedding: bool = False
) -> nn.Module:
    """The backbone of a converted file (:class:`MusicnnBackbone` or :class:`MusicnnVggBackbone`)
    with its weights loaded, in eval mode.

    Args:
        weights_file: a file written by ``scripts/convert_musicnn.py``.
        pooled_embedding: also put the pooled intermediate features in ``forward``'s embedding.

    Raises:
        ValueError: one line naming the file when it is missing, unreadable, of an unknown model
            or its weights do not fit the architecture it names.
    """
    data = load_pretrained(weights_file)
    try:
        cls = backbone_class(data)
    except ValueError as err:
        raise ValueError(f"{weights_file}: {err}") from err
    backbone = cls(pooled_embedding=pooled_embedding)
    load_weights(backbone, data["state_dict"], weights_file, cls.__name__)
    return backbone.eval()


def init_vgg_from_pretrained(
    backbone: nn.Module,
    path: str | os.PathLike,
    tag_head: nn.Linear | None = None,
    tag_names: list[str] | None = None,
) -> list[str]:
    """Load a ``*_vgg`` file into ``backbone`` (``--model.pretrained`` of the ``musicnn_vgg``
    backbones) and start ``tag_head`` from the teacher's taggram, as
    :func:`~.musicnn.init_from_pretrained` does; a file of the other architecture is refused in
    one line.

    Returns:
        The tag names that were initialised from the teacher.
    """
    data = load_pretrained(path)
    if backbone_class(data) is not MusicnnVggBackbone:
        raise ValueError(
            f"{path}: holds {data.get('model') or 'musicnn'} weights; the musicnn_vgg backbone "
            "needs MSD_vgg or MTT_vgg (scripts/convert_musicnn.py --model MSD_vgg)"
        )
    return init_from_pretrained(backbone, path, tag_head, tag_names)
