"""Runners: what turns a batch of windows into raw head outputs, for :class:`inference.Tagger`.

The windowing, batching and aggregation in ``inference`` are the same whichever runner does the
arithmetic: PyTorch (:class:`TorchRunner`, from a checkpoint) or onnxruntime (:class:`OnnxRunner`,
from ``scripts/export_onnx.py``'s file). A runner takes (batch, samples) float32 audio at the
model's sample rate and returns ``{"genre", "mood", "features", "tags", "genre_tags", "tempo",
"embedding"}`` (the heads the model has) as float32 CPU tensors: logits and standardised
features, exactly what :class:`TaggerNet` returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch

from lightning_module.inference.device import resolve_device
from lightning_module.model.network import TaggerNet

#: Key of the ONNX metadata entry holding the checkpoint's hyperparameters as JSON.
ONNX_HPARAMS_KEY = "audiotagger.hparams"
#: Output names of an exported model, in this order (absent heads are left out).
OUTPUT_NAMES = ("genre", "mood", "features", "tags", "genre_tags", "tempo", "embedding")
INPUT_NAME = "waveform"


class Runner(Protocol):
    """(batch, samples) float32 waveforms → dict of (batch, n) float32 CPU tensors."""

    def __call__(self, windows: torch.Tensor) -> dict[str, torch.Tensor]: ...


class TorchRunner:
    """Runs a :class:`TaggerNet` in eval mode, without autograd, on ``device``."""

    def __init__(self, net: TaggerNet, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(windows.to(self.device))
        return {k: v.float().cpu() for k, v in out.items()}


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used; the message is one line naming the file."""


class OnnxRunner:
    """Runs an exported model with onnxruntime.

    Args:
        path: ``.onnx`` file written by ``scripts/export_onnx.py`` (carries the hyperparameters).
        device: ``cpu`` or ``cuda[:N]`` (CUDA only when onnxruntime-gpu is installed).
        threads: intra-op threads (``None``: onnxruntime's default).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort  # optional dependency (the ``onnx`` extra)

        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        device = resolve_device(device, check_cuda=False)  # onnxruntime-gpu brings its own CUDA
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise OnnxModelError(
                    f"{path}: device {device} needs onnxruntime-gpu (CUDAExecutionProvider)"
                )
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/... errors
            text = " ".join(str(err).split())[:200]
            raise OnnxModelError(f"{path}: not a readable ONNX model ({text})") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if ONNX_HPARAMS_KEY not in meta:
            raise OnnxModelError(
                f"{path}: no '{ONNX_HPARAMS_KEY}' metadata; export it with scripts/export_onnx.py"
            )
        self.hparams: dict[str, Any] = json.loads(meta[ONNX_HPARAMS_KEY])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        feed = {self.input_name: windows.detach().float().cpu().contiguous().numpy()}
        outputs = self.session.run(self.output_names, feed)
        return {
            name: torch.from_numpy(value)
            for name, value in zip(self.output_names, outputs, strict=True)
        }
