"""Which device a `--device` / `device:` value names, checked with a one-line error.

:func:`parse_device` needs no torch (the onnxruntime runner uses it); :func:`resolve_device`
gives a ``torch.device`` for the PyTorch runner and training, and imports torch itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lightning_module.inference.errors import DeviceError

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceError", "parse_device", "resolve_device"]

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(name: Any) -> tuple[str, int | None]:
    """``cpu`` / ``cuda`` / ``cuda:N`` → (type, index) without torch (``auto`` is ``cpu`` here:
    only a runtime that brings its own CUDA can say more).

    Raises:
        DeviceError: anything else.
    """
    text = str(name)
    if text == "auto":
        return "cpu", None
    match = _DEVICE.match(text)
    if not match:
        raise DeviceError(f"device: {text!r} is not a device (cpu, cuda, cuda:N)")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def resolve_device(name: Any = "auto", check_cuda: bool = True) -> torch.device:
    """``auto`` → ``cuda`` when CUDA is present, else ``cpu``; any other name (``cpu``, ``cuda``,
    ``cuda:N``, ...) as torch parses it, refused when it needs CUDA and there is none
    (``check_cuda=False`` where another runtime brings its own, e.g. onnxruntime-gpu)."""
    import torch

    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceError(f"device: {err}") from None
    if check_cuda and device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name}: CUDA is not available here")
    return device
