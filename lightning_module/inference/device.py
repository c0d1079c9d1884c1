"""Which torch device a `--device` / `device:` value names, checked with a one-line error."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device name that is not a device, or CUDA asked for where there is none (one line)."""


def resolve_device(name: str | torch.device = "auto", check_cuda: bool = True) -> torch.device:
    """``auto`` → ``cuda`` when CUDA is present, else ``cpu``; any other name (``cpu``, ``cuda``,
    ``cuda:N``, ...) as torch parses it, refused when it needs CUDA and there is none
    (``check_cuda=False`` where another runtime brings its own, e.g. onnxruntime-gpu)."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise DeviceError(f"device: {err}") from None
    if check_cuda and device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name}: CUDA is not available here")
    return device
