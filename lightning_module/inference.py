"""Tag audio with a trained checkpoint: the one implementation behind predict_clip and evaluate.

Loads the checkpoint without executing pickled code (``torch.load(weights_only=True)``), rebuilds
the pure ``nn.Module`` from the saved hyperparameters, splits long audio into overlapping windows,
runs them in batches and averages. Imports neither Lightning, TensorBoard nor pandas, so a cold
start costs little more than importing torch.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from datamodules.audio import AudioError, load_audio, window_starts
from datamodules.features import FEATURE_UNITS
from lightning_module.network import TaggerNet, build_network

#: Shortest audio we tag, in seconds; shorter clips carry too little music to say anything.
MIN_SECONDS = 1.0


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


@dataclass
class ClipPrediction:
    """What the model says about one clip (or one window of it).

    ``genre``/``mood``/``tags`` are (name, probability) pairs, most probable first; ``features``
    maps each audio feature to its value in natural units (tempo in BPM, loudness in dB, rest 0-1).
    """

    path: str | None
    duration: float  # seconds of audio tagged
    windows: int
    genre: list[tuple[str, float]] = field(default_factory=list)
    mood: list[tuple[str, float]] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    tags: list[tuple[str, float]] = field(default_factory=list)
    start: float = 0.0  # offset of the tagged audio in the file, seconds

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        data = asdict(self)
        for key in ("genre", "mood", "tags"):
            data[key] = [
                {"label": n, "probability": round(p, 4)} for n, p in getattr(self, key)[:top]
            ]
        data["features"] = {k: round(v, 4) for k, v in self.features.items()}
        return data


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint safely: tensors and plain containers only, never pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
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


def find_checkpoint(folder: str | os.PathLike = "checkpoints") -> Path:
    """The newest ``best*.ckpt`` in ``folder`` (else the newest ``*.ckpt``)."""
    folder = Path(folder)
    for pattern in ("best*.ckpt", "*.ckpt"):
        found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    raise CheckpointError(
        f"{folder}: no checkpoint found; train one with `make train` or pass --checkpoint"
    )


class Tagger:
    """A trained model ready to tag audio.

    Args:
        net: the network, in eval mode.
        hparams: the checkpoint's hyperparameters (label names, feature statistics, frontend).
        device: where to run.
        batch_size: windows per forward pass.
        overlap: fraction of a window shared by consecutive windows.
    """

    def __init__(
        self,
        net: TaggerNet,
        hparams: dict[str, Any],
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        overlap: float = 0.5,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.hparams = hparams
        self.batch_size = batch_size
        self.sample_rate = int(hparams["sample_rate"])
        self.window = int(round(float(hparams.get("crop_seconds", 3.0)) * self.sample_rate))
        self.hop = max(int(self.window * (1.0 - overlap)), 1)
        self._mean = torch.tensor(hparams["feature_mean"], dtype=torch.float32)
        self._std = torch.tensor(hparams["feature_std"], dtype=torch.float32)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Tagger:
        checkpoint = load_checkpoint(path)
        hparams = dict(checkpoint["hyper_parameters"])
        try:
            net = build_network(hparams)
            state = {
                k.removeprefix("net."): v
                for k, v in checkpoint["state_dict"].items()
                if k.startswith("net.")
            }
            net.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: does not match the model it describes ({type(err).__name__}: "
                f"{str(err).splitlines()[0]})"
            ) from err
        return cls(net, hparams, device=device, **kwargs)

    # -- raw outputs ------------------------------------------------------------------------------
    @torch.inference_mode()
    def window_outputs(self, wave: torch.Tensor) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Run every window of a (samples,) waveform; return window starts and per-window outputs.

        Outputs are probabilities for ``genre``/``mood``/``tags`` (softmax / sigmoid), natural-unit
        ``features`` and the ``embedding``, each (n_windows, n) on the CPU.
        """
        if wave.numel() <= self.window:
            starts, windows = [0], wave[None]  # shorter than a window: use it whole, unpadded
        else:
            starts = window_starts(wave.numel(), self.window, self.hop)
            windows = torch.stack([wave[s : s + self.window] for s in starts])
        chunks: list[dict[str, torch.Tensor]] = []
        for batch in windows.split(self.batch_size):
            out = self.net(batch.to(self.device))
            chunks.append({k: v.float().cpu() for k, v in out.items()})
        outputs = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
        for task in ("genre", "mood"):
            if task in outputs:
                outputs[task] = outputs[task].softmax(-1)
        if "tags" in outputs:
            outputs["tags"] = outputs["tags"].sigmoid()
        if "features" in outputs:
            outputs["features"] = outputs["features"] * self._std + self._mean
        return starts, outputs

    def _prediction(
        self,
        outputs: dict[str, torch.Tensor],
        path: str | None,
        duration: float,
        windows: int,
        start: float = 0.0,
    ) -> ClipPrediction:
        hp = self.hparams

        def ranked(key: str, names: Sequence[str]) -> list[tuple[str, float]]:
            if key not in outputs:
                return []
            probs = outputs[key].tolist()
            return sorted(zip(names, probs, strict=True), key=lambda pair: -pair[1])

        features = {}
        if "features" in outputs:
            features = dict(zip(hp["feature_names"], outputs["features"].tolist(), strict=True))
        return ClipPrediction(
            path=path,
            duration=duration,
            windows=windows,
            genre=ranked("genre", hp["genre_names"]),
            mood=ranked("mood", hp["mood_names"]),
            features=features,
            tags=ranked("tags", hp.get("tag_names") or []),
            start=start,
        )

    # -- public API -------------------------------------------------------------------------------
    def predict_waveform(
        self, wave: torch.Tensor, path: str | None = None, start: float = 0.0
    ) -> ClipPrediction:
        """Tag a (samples,) float waveform at the model's sample rate: windows averaged."""
        starts, outputs = self.window_outputs(wave)
        mean = {k: v.mean(0) for k, v in outputs.items()}
        return self._prediction(mean, path, wave.numel() / self.sample_rate, len(starts), start)

    def load(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> torch.Tensor:
        """Decode ``path`` for this model; refuses audio shorter than ``MIN_SECONDS``."""
        return load_audio(
            path, self.sample_rate, offset=offset, duration=duration, min_duration=MIN_SECONDS
        )

    def predict_file(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> ClipPrediction:
        """Decode and tag an audio file (any format soundfile reads, any rate, mono or stereo)."""
        return self.predict_waveform(self.load(path, offset, duration), str(path), start=offset)

    def timeline(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> list[ClipPrediction]:
        """One prediction per window of the file, in time order (``start`` in seconds)."""
        wave = self.load(path, offset, duration)
        starts, outputs = self.window_outputs(wave)
        seconds = min(self.window, wave.numel()) / self.sample_rate
        return [
            self._prediction(
                {k: v[i] for k, v in outputs.items()},
                str(path),
                seconds,
                1,
                offset + s / self.sample_rate,
            )
            for i, s in enumerate(starts)
        ]

    def predict_files(
        self, paths: Sequence[str | os.PathLike]
    ) -> Iterator[ClipPrediction | AudioError]:
        """Tag many files with one model; yields a prediction, or the AudioError of a bad file."""
        for path in paths:
            try:
                yield self.predict_file(path)
            except AudioError as err:
                yield err


def format_prediction(prediction: ClipPrediction, top: int = 3) -> str:
    """Human-readable summary: top genres, moods and tags, and every feature in natural units."""
    lines = [
        f"{prediction.path or 'audio'}  "
        f"({prediction.duration:.1f} s, {prediction.windows} window(s))"
    ]
    for key in ("genre", "mood", "tags"):
        ranked = getattr(prediction, key)[:top]
        if ranked:
            lines.append(f"  {key + ':':<9}" + ", ".join(f"{name} {p:.2f}" for name, p in ranked))
    if prediction.features:
        lines.append("  features:")
        for name, value in prediction.features.items():
            unit = FEATURE_UNITS.get(name, "")
            text = f"{value:.1f} {unit}" if unit else f"{value:.3f}"
            lines.append(f"    {name:<17}{text}")
    return "\n".join(lines)
