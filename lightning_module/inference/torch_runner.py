"""The PyTorch runner: a checkpoint's :class:`TaggerNet` behind the numpy :class:`Runner` protocol.

Imported only when a checkpoint (not an ONNX file) is run, so the runtime without torch never
loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lightning_module.inference.device import resolve_device
from lightning_module.model.network import TaggerNet


class TorchRunner:
    """Runs a :class:`TaggerNet` in eval mode, without autograd, on ``device``.

    Shapes: (batch, samples) float32 numpy (or tensor) → dict of (batch, n) float32 numpy.
    """

    def __init__(self, net: TaggerNet, device: Any = "cpu") -> None:
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, windows: Any) -> dict[str, np.ndarray]:
        wave = windows if isinstance(windows, torch.Tensor) else torch.from_numpy(windows)
        out = self.net(wave.float().to(self.device))
        return {k: v.float().cpu().numpy() for k, v in out.items()}
