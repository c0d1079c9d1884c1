"""Open a trained model safely: Lightning checkpoints without executing pickled code
(``torch.load(weights_only=True)``), rebuilt as the pure network described by their
:class:`~lightning_module.model.spec.TaggerSpec`."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from lightning_module.inference.errors import CheckpointError, ModelError  # noqa: F401
from lightning_module.model.network import TaggerNet, build_network
from lightning_module.model.spec import TaggerSpec


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint safely: tensors and plain containers only, never pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (or, long ago, a pickle): anything else is some other file,
    # and torch's own error would advise weights_only=False, which is both wrong and unsafe.
    if not magic.startswith(b"PK\x03\x04") and not magic.startswith(b"\x80"):
        raise CheckpointError(f"{path}: not a checkpoint (a .ckpt file written by training)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain "
            f"values ({first})"
        ) from err
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__})") from err
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise CheckpointError(
            f"{path}: not a MusicTagger checkpoint (no state_dict/hyper_parameters)"
        )
    return checkpoint


def load_network(path: str | os.PathLike) -> tuple[TaggerNet, TaggerSpec]:
    """The network (eval mode, CPU) and spec of a checkpoint, loaded safely."""
    checkpoint = load_checkpoint(path)
    try:
        spec = TaggerSpec.from_hparams(checkpoint["hyper_parameters"])
        net = build_network(spec)
        state = {
            k.removeprefix("net."): v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith("net.")
        }
        net.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"{path}: does not match the model it describes ({type(err).__name__}: "
            f"{str(err).splitlines()[0]})"
        ) from err
    return net.eval(), spec
