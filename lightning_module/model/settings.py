"""The two typed groups of model settings: the log-mel front-end and the loss weights.

Each is a frozen dataclass, held by :class:`~lightning_module.model.spec.TaggerSpec` as one field
and taken by ``MusicTagger`` as one argument (YAML ``model: {logmel: {n_mels: 64}}``, flag
``--model.logmel.n_mels 64``). Checkpoints and ONNX metadata store them as nested plain dicts
(:meth:`TaggerSpec.to_hparams`). Plain values only: the torch-free runtime reads the spec, so this
module imports no torch (which is why the groups are not in ``model/frontend.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

_Group = TypeVar("_Group", "LogMelSettings", "LossWeights")


def _coerce(cls: type[_Group], value: _Group | Mapping[str, Any] | None) -> _Group:
    """``value`` as a ``cls``: itself, or built from its plain dict (missing keys: defaults).

    Raises:
        TypeError: a key that is not a field of ``cls`` (the message names it).
    """
    if isinstance(value, cls):
        return value
    values = dict(value or {})
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return cls(**values)


@dataclass(frozen=True)
class LogMelSettings:
    """How the waveform becomes the log-mel the backbone reads (``model.frontend.LogMel``).

    The sample rate is not here: it is how audio is decoded everywhere (the data module, the key
    branch, inference windows), so it stays a top-level spec field, linked from ``--data``.

    Attributes:
        n_fft: FFT size in samples.
        hop_length: hop between frames in samples.
        n_mels: number of mel bands.
        f_min: lowest mel frequency in Hz.
        f_max: highest mel frequency in Hz (``None``: Nyquist).
        compression: ``db`` (10·log10(power + 1e-10), clipped 80 dB under each clip's peak) or
            ``log1p`` (log10(10000·power + 1), musicnn's input).
        mel_norm: torchaudio's mel filter normalisation, ``slaney`` or ``None``.
        mel_scale: ``htk`` or ``slaney``.
    """

    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    f_min: float = 0.0
    f_max: float | None = None
    compression: str = "db"
    mel_norm: str | None = None
    mel_scale: str = "htk"

    @classmethod
    def of(cls, value: LogMelSettings | Mapping[str, Any] | None) -> LogMelSettings:
        """The settings ``value`` is or holds (a checkpoint's plain dict; ``None``: defaults)."""
        return _coerce(cls, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in checkpoints."""
        return asdict(self)


@dataclass(frozen=True)
class LossWeights:
    """Weight of each task's loss in the total, one field per task of ``model.tasks.TASKS``
    (named as the task). A head the model lacks contributes 0 whatever its weight."""

    genre: float = 1.0
    mood: float = 1.0
    features: float = 1.0
    tags: float = 1.0
    genre_tags: float = 1.0
    tempo: float = 1.0
    key: float = 1.0

    @classmethod
    def of(cls, value: LossWeights | Mapping[str, Any] | None) -> LossWeights:
        """The weights ``value`` is or holds (a checkpoint's plain dict; ``None``: all 1)."""
        return _coerce(cls, value)

    def to_dict(self) -> dict[str, float]:
        """Plain values, as stored in checkpoints."""
        return asdict(self)

    def weight(self, task: str) -> float:
        """The weight of the task called ``task`` (1 for a task given no field yet)."""
        return float(getattr(self, task, 1.0))


def plain(value: Any) -> Any:
    """A group (:class:`LogMelSettings`, :class:`LossWeights`) as its plain dict; any other
    value as it is."""
    return value.to_dict() if isinstance(value, LogMelSettings | LossWeights) else value


def changes_said(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key=value`` for each setting of ``new`` that ``old`` has otherwise, a group field by
    field (``logmel.n_mels=96``): what a log line says was changed."""
    said = []
    for key, value in new.items():
        before, after = plain(old.get(key)), plain(value)
        if isinstance(after, Mapping):
            before = before if isinstance(before, Mapping) else {}
            said += [f"{key}.{k}={v}" for k, v in after.items() if before.get(k) != v]
        elif before != after:
            said.append(f"{key}={after}")
    return said
