"""The shipped model: package data installed with the wheel, used when no model is named.

``make refit`` builds it (the distilled fast student, refitted on every labelled clip) and
``scripts/ship_model.py`` copies it into ``lightning_module/shipped/``:

- ``model.onnx``: what the torch-free runtime runs (waveform in, every head out);
- ``tagger.ckpt``: the same weights as a slim Lightning checkpoint (``state_dict`` and
  ``hyper_parameters`` only), where fine-tuning starts;
- ``model.json``: its id, version and the sha256 of both files;
- ``MODEL_CARD.md`` and ``LICENSE-weights.md``: what it learned from, how good it is, its terms.

Torch-free: this module only finds files. A missing file is a one-line :class:`ShippedModelError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lightning_module.inference.errors import ShippedModelError

#: The package whose data folder holds the shipped model.
SHIPPED_PACKAGE = "lightning_module.shipped"
ONNX_NAME = "model.onnx"
CHECKPOINT_NAME = "tagger.ckpt"
INFO_NAME = "model.json"
CARD_NAME = "MODEL_CARD.md"
LICENSE_NAME = "LICENSE-weights.md"


def shipped_dir() -> Path:
    """The folder of the shipped model's files (inside the installed package)."""
    return Path(str(resources.files(SHIPPED_PACKAGE)))


def _shipped_file(name: str) -> Path:
    path = shipped_dir() / name
    if not path.is_file():
        raise ShippedModelError(
            f"{path}: the shipped model is not installed; reinstall the package "
            "(`pip install .`), rebuild it with `make refit`, or name a model"
        )
    return path


def shipped_onnx() -> Path:
    """The shipped model as ONNX: what every tool runs when no model is named."""
    return _shipped_file(ONNX_NAME)


def shipped_checkpoint() -> Path:
    """The shipped model as a slim checkpoint: where fine-tuning starts."""
    return _shipped_file(CHECKPOINT_NAME)


def shipped_card() -> str:
    """The model card (markdown)."""
    return _shipped_file(CARD_NAME).read_text(encoding="utf-8")


@dataclass(frozen=True)
class ShippedInfo:
    """``model.json``: the shipped model's identity (``id``, ``version``), the sha256 of each
    file, and the ``weights_license``."""

    id: str
    version: str
    files: dict[str, str]
    weights_license: str
    extra: dict[str, Any]

    @property
    def model_id(self) -> str:
        """``<id>@<version>``: how outputs name the model."""
        return f"{self.id}@{self.version}"


def shipped_info() -> ShippedInfo:
    """The shipped model's ``model.json``."""
    path = _shipped_file(INFO_NAME)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ShippedInfo(
            id=str(data["id"]),
            version=str(data["version"]),
            files=dict(data["files"]),
            weights_license=str(data["weights_license"]),
            extra={
                k: v
                for k, v in data.items()
                if k not in ("id", "version", "files", "weights_license")
            },
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ShippedModelError(f"{path}: not a readable model.json ({err})") from err


def default_model() -> Path:
    """The model every tool runs when none is named: the shipped ONNX model. A model a user
    trained is used only when named (``--checkpoint`` / ``--onnx``), so a synthetic demo in
    ``checkpoints/`` is never picked up silently for real audio."""
    return shipped_onnx()


def shipped_details(model: str | os.PathLike) -> dict[str, Any] | None:
    """When ``model`` is one of the shipped model's files: its id, version, weights licence and
    model card (what the service's ``GET /v1/model`` adds); else None."""
    try:
        files = {shipped_onnx().resolve(), shipped_checkpoint().resolve()}
        if Path(model).resolve() not in files:
            return None
        info = shipped_info()
        return {
            "model_id": info.model_id,
            "weights_license": info.weights_license,
            "card": shipped_card(),
        }
    except ShippedModelError:
        return None
