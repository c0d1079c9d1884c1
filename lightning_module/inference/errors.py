"""Why a model cannot be used here: one-line errors naming the file (torch-free)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used; the message is one line naming the file."""


class DeviceError(ValueError):
    """A device name that is not a device, or CUDA asked for where there is none (one line)."""


class ShippedModelError(ValueError):
    """The shipped model is missing or damaged; the message is one line naming the file."""


#: Errors that mean "this model cannot be used here" (a checkpoint, an ONNX export, the device,
#: the shipped model's files).
ModelError: tuple[type[ValueError], ...] = (
    CheckpointError,
    OnnxModelError,
    DeviceError,
    ShippedModelError,
)
