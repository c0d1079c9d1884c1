"""Export a checkpoint to ONNX: waveform in, every head out, log-mel frontend included.

torchaudio's ``MelSpectrogram`` does not export with the legacy TorchScript exporter ("STFT does
not currently support complex types"), but the dynamo exporter (``torch.onnx.export(...,
dynamo=True)``) lowers it to ONNX's STFT op, so the very same frontend module is exported and
nobody re-implements the mel. Batch and length axes are dynamic. The checkpoint's hyperparameters
(label names, feature statistics, window length) travel in the model's metadata, so the ``.onnx``
file alone is enough for :class:`lightning_module.inference.tagger.Tagger`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from datamodules.io import atomic_path
from lightning_module.inference.runners import (
    INPUT_NAME,
    ONNX_HPARAMS_KEY,
    OnnxRunner,
)
from lightning_module.model.network import TaggerNet
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import output_names

#: Largest |difference| accepted between onnxruntime and PyTorch on logits, standardised features
#: and embeddings. float32 STFT/log/conv arithmetic in a different order differs by ~1e-5.
TOLERANCE = 1e-3


class ExportError(RuntimeError):
    """The export failed or onnxruntime disagrees with PyTorch; one line, no file written."""


class ExportWrapper(nn.Module):
    """A :class:`TaggerNet` returning a tuple in ``names`` order (ONNX outputs are positional).

    Shapes: (batch, samples) float32 → tuple of (batch, n) float32.
    """

    def __init__(self, net: TaggerNet, names: tuple[str, ...]) -> None:
        super().__init__()
        self.net = net
        self.names = names

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(wave)
        return tuple(out[name].float() for name in self.names)


@dataclass
class ExportReport:
    """What was exported and how closely onnxruntime matches PyTorch."""

    path: Path
    outputs: tuple[str, ...]
    max_abs_diff: dict[str, float]
    tolerance: float
    size_bytes: int

    @property
    def ok(self) -> bool:
        return all(v <= self.tolerance for v in self.max_abs_diff.values())

    def summary(self) -> str:
        head = f"{self.path} ({self.size_bytes / 1e6:.1f} MB): outputs {', '.join(self.outputs)}"
        if not self.max_abs_diff:
            return f"{head}; not verified"
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in self.max_abs_diff.items())
        verdict = "OK" if self.ok else "MISMATCH"
        return (
            f"{head}; max |onnxruntime - pytorch| {diffs} ({verdict}, tolerance {self.tolerance:g})"
        )


def export_onnx(
    net: TaggerNet,
    hparams: TaggerSpec | dict[str, Any],
    out: str | os.PathLike,
    opset: int = 18,
    verify: bool = True,
) -> ExportReport:
    """Write ``net`` (frontend, backbone, heads) to ``out`` as ONNX and check it with onnxruntime.

    Args:
        net: the network; exported in eval mode (no SpecAugment, no dropout).
        hparams: the model's spec (or a checkpoint's hyperparameters), stored as JSON metadata.
        out: destination ``.onnx`` file (written to a temporary name, then renamed).
        opset: ONNX opset (STFT needs >= 17).
        verify: run onnxruntime and PyTorch on random audio of two batch sizes and lengths.
    """
    import onnx  # optional dependency (the ``onnx`` extra)

    out = Path(out)
    net = net.cpu().eval()
    spec = hparams if isinstance(hparams, TaggerSpec) else TaggerSpec.from_hparams(hparams)
    example = torch.randn(2, spec.window_samples) * 0.1
    with torch.no_grad():
        present = net(example)
    names = tuple(name for name in output_names() if name in present)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # Reflect padding of the centred STFT needs more than n_fft / 2 samples.
    samples = torch.export.Dim("samples", min=spec.logmel.n_fft // 2 + 1)
    try:
        program = torch.onnx.export(
            ExportWrapper(net, names).eval(),
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(names),
            dynamic_shapes=({0: batch, 1: samples},),
            opset_version=opset,
            verbose=False,
        )
    except Exception as err:  # torch.export's constraint violations, unsupported operators, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{out}: not written: export failed ({first[:200]})") from err
    diffs: dict[str, float] = {}
    # Checked before it appears under its name: a model that fails the check leaves no file.
    with atomic_path(out) as tmp:
        program.save(str(tmp))
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = ONNX_HPARAMS_KEY, json.dumps(spec.to_hparams())
        model.producer_name = "audiotagger"
        onnx.checker.check_model(model)
        static = [
            d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim if d.dim_value
        ]
        if static:  # a frozen axis: the model would refuse any other batch size or length
            raise ExportError(f"{out}: not written: the input has static axes {static}")
        onnx.save(model, str(tmp))
        if verify:
            diffs = verify_onnx(net, tmp)
            report = ExportReport(out, names, diffs, TOLERANCE, tmp.stat().st_size)
            if not report.ok:
                raise ExportError(f"{out}: not written: {report.summary()}")
    return ExportReport(out, names, diffs, TOLERANCE, out.stat().st_size)


@torch.no_grad()
def verify_onnx(net: TaggerNet, path: str | os.PathLike, seed: int = 0) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| per output, over random music-like inputs of two batch
    sizes and two lengths that both differ from the training window (0.7 and 2.5 windows: the
    dynamic axes, which a model exported with a frozen length would refuse)."""
    runner = OnnxRunner(path)
    spec = TaggerSpec.from_hparams(runner.hparams)
    window = spec.window_samples
    generator = torch.Generator().manual_seed(seed)
    worst: dict[str, float] = {}
    for batch, length in ((1, int(0.7 * window)), (3, int(2.5 * window))):
        t = torch.arange(length) / spec.sample_rate
        tone = 0.3 * torch.sin(2 * torch.pi * 440.0 * t)
        wave = tone + 0.05 * torch.randn(batch, length, generator=generator)
        expected = {k: v.float().numpy() for k, v in net.eval()(wave).items()}
        got = runner(wave.numpy())
        for name, value in got.items():
            diff = float(np.abs(value - expected[name]).max())
            worst[name] = max(worst.get(name, 0.0), diff)
    return worst
