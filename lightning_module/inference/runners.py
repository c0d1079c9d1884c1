"""Runners: what turns a batch of windows into raw head outputs, for :class:`inference.Tagger`.

The windowing, batching and aggregation in ``inference`` are the same whichever runner does the
arithmetic: onnxruntime (:class:`OnnxRunner`, from ``scripts/export_onnx.py``'s file or the
shipped model; no torch) or PyTorch (:class:`TorchRunner` in ``inference.torch_runner``, from a
checkpoint; imported only when asked for). A runner takes (batch, samples) float32 numpy audio at
the model's sample rate and returns one float32 numpy array per head the model has (the names of
``model.tasks.TASKS``: ``genre``, ``mood``, ``features``, ``tags``, ``genre_tags``, ``tempo``,
``key``) and the ``embedding``: logits and standardised features, exactly what
:class:`TaggerNet` returns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lightning_module.inference.device import parse_device
from lightning_module.inference.errors import OnnxModelError
from lightning_module.model.tasks import output_names

__all__ = ["INPUT_NAME", "ONNX_HPARAMS_KEY", "OUTPUT_NAMES", "OnnxModelError", "OnnxRunner"]

#: Key of the ONNX metadata entry holding the checkpoint's hyperparameters as JSON.
ONNX_HPARAMS_KEY = "audiotagger.hparams"
#: Output names of an exported model, in this order (absent heads are left out).
OUTPUT_NAMES = output_names()
INPUT_NAME = "waveform"


class Runner(Protocol):
    """(batch, samples) float32 waveforms → dict of (batch, n) float32 numpy arrays."""

    def __call__(self, windows: np.ndarray) -> dict[str, np.ndarray]: ...


def __getattr__(name: str) -> Any:
    # TorchRunner lives beside, so that importing this module never imports torch.
    if name == "TorchRunner":
        from lightning_module.inference.torch_runner import TorchRunner

        return TorchRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        device: Any = "cpu",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort  # a core dependency, imported when a model is opened

        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        kind, index = parse_device(device)  # onnxruntime-gpu brings its own CUDA
        providers: list[Any] = ["CPUExecutionProvider"]
        if kind == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise OnnxModelError(
                    f"{path}: device {device} needs onnxruntime-gpu (CUDAExecutionProvider)"
                )
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index or 0}))
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

    def __call__(self, windows: Any) -> dict[str, np.ndarray]:
        feed = {self.input_name: np.ascontiguousarray(_numpy(windows), dtype=np.float32)}
        outputs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs, strict=True))


def _numpy(array: Any) -> np.ndarray:
    """A numpy view of ``array`` (a CPU tensor is accepted, for callers that still hold one)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().float().cpu().numpy()
    return np.asarray(array)
