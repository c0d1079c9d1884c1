"""musicnn (Pons & Serra 2019) re-implemented in PyTorch, so the student can start from its weights.

The architecture of the ``MSD_musicnn`` / ``MTT_musicnn`` checkpoints shipped in the ``musicnn``
wheel, layer for layer: a musically motivated front-end (timbral filters spanning 40% and 70% of the
mel axis, temporal filters of 128/64/32 frames, each max-pooled over frequency), a mid-end of three
1-D convolutions with residual connections, and a back-end of max+mean pooling over time followed by
a 200-unit dense layer (the embedding) and a 50-tag output layer (the taggram head).
:mod:`lightning_module.teacher.musicnn` converts the TensorFlow checkpoint into this module's state
dict; weights are made on the user's machine and never committed.

Its input is musicnn's own log-mel (:data:`MUSICNN_FRONTEND` at :data:`MUSICNN_SAMPLE_RATE`):
16 kHz, n_fft 512, hop 256, 96 Slaney mel bands, log10(10000·power + 1), computed in float32.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_module.model.frontend import LogMel
from lightning_module.model.settings import LogMelSettings

#: The sample rate musicnn was trained at (Hz): its input must be decoded at it.
MUSICNN_SAMPLE_RATE = 16000
#: LogMel settings that reproduce musicnn's librosa input (``librosa.feature.melspectrogram``
#: defaults: Slaney mel scale and area normalisation, power 2, centred frames).
MUSICNN_FRONTEND = LogMelSettings(
    n_fft=512,
    hop_length=256,
    n_mels=96,
    f_min=0.0,
    f_max=None,
    compression="log1p",
    mel_norm="slaney",
    mel_scale="slaney",
)
#: Frames of one musicnn input patch: 3 s at 16 kHz with hop 256 (``n_frames`` in its config).
PATCH_FRAMES = 187
#: tf.compat.v1.layers.batch_normalization's epsilon (PyTorch's default is 1e-5).
TF_BN_EPS = 1e-3


def musicnn_logmel() -> LogMel:
    """Our LogMel set to musicnn's input (float32 throughout; see :data:`MUSICNN_FRONTEND`)."""
    return LogMel(MUSICNN_FRONTEND, MUSICNN_SAMPLE_RATE)


def tag_slug(name: str) -> str:
    """Teacher tag → manifest-friendly name: ``"female vocalists"`` → ``"female_vocalists"``,
    ``"Hip-Hop"`` → ``"hip_hop"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


class _FrequencyPooledConv(nn.Module):
    """Conv2d → ReLU → BatchNorm → max over the whole frequency axis (musicnn's front-end blocks).

    ``time_pad`` is (before, after) zero padding on the time axis; frequency is never padded.

    Shapes: (batch, 1, frames, n_mels) → (batch, filters, frames).
    """

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]) -> None:
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.norm = nn.BatchNorm2d(filters, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))
        return self.norm(F.relu(self.conv(x))).amax(dim=3)


class _MidendConv(nn.Module):
    """Conv1d (kernel 7, 'same') → ReLU → BatchNorm over (batch, channels, frames)."""

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, 7, padding=3)
        self.norm = nn.BatchNorm1d(filters, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(x)))


class PretrainedTagger(nn.Module):
    """What musicnn's taggers share once ``features`` is defined: the embedding (penultimate
    layer, after dropout, plus the pooled features when ``pooled_embedding``) and the taggram.
    Subclasses set ``features``, ``dropout``, ``pooled_embedding``, ``tag_head`` and
    ``taggram_dim``."""

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        features = self.features(spec)
        embedding = self.dropout(features["penultimate"])
        if self.pooled_embedding:
            return torch.cat([embedding, features["max_pool"], features["mean_pool"]], dim=1)
        return embedding

    def taggram(self, spec: torch.Tensor) -> torch.Tensor:
        """The teacher's own tag logits (sigmoid gives its tag probabilities; for a VGG clip of
        several patches, the mean of their logits)."""
        return self.tag_head(self(spec)[:, : self.taggram_dim])


class MusicnnBackbone(PretrainedTagger):
    """musicnn as a backbone: log-mel → 200-d embedding (its penultimate layer) + taggram head.

    Args:
        n_mels: mel bands of the input (96 for the pretrained weights).
        n_tags: outputs of the taggram head (50 for MSD and MTT).
        midend_filters: filters of each mid-end convolution (64 for ``*_musicnn``).
        embed_dim: units of the penultimate dense layer (200 for ``*_musicnn``).
        dropout: dropout on the pooled features and on the embedding (musicnn trained with 0.5).
        pooled_embedding: the embedding is the penultimate layer *and* the time-pooled front- and
            mid-end features (max and mean: ``embed_dim + 2 * 753`` values), the richer input a
            linear probe of the frozen network reads best (``musicnn_pooled`` backbone).

    Shapes: ``forward``: (batch, 1, n_mels, frames) → (batch, self.embed_dim);
    ``taggram``: (batch, 1, n_mels, frames) → (batch, n_tags) logits. Any number of frames ≥ 1.
    """

    #: Embedding size of the pretrained ``*_musicnn`` models.
    EMBED_DIM = 200

    def __init__(
        self,
        n_mels: int = 96,
        n_tags: int = 50,
        midend_filters: int = 64,
        embed_dim: int = EMBED_DIM,
        dropout: float = 0.5,
        pooled_embedding: bool = False,
    ) -> None:
        super().__init__()
        self.pooled_embedding = pooled_embedding
        self.input_norm = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        # Timbral: 7 frames x 40% / 70% of the mel axis, time padded 3 + 3 then 'valid'.
        self.timbral = nn.ModuleList(
            _FrequencyPooledConv(204, (7, int(share * n_mels)), (3, 3)) for share in (0.4, 0.7)
        )
        # Temporal: 128 / 64 / 32 frames x 1 band, TensorFlow 'same' padding (less before).
        self.temporal = nn.ModuleList(
            _FrequencyPooledConv(51, (k, 1), ((k - 1) // 2, k - 1 - (k - 1) // 2))
            for k in (128, 64, 32)
        )
        frontend_channels = 2 * 204 + 3 * 51
        self.midend = nn.ModuleList(
            [
                _MidendConv(frontend_channels, midend_filters),
                _MidendConv(midend_filters, midend_filters),
                _MidendConv(midend_filters, midend_filters),
            ]
        )
        pooled = 2 * (frontend_channels + 3 * midend_filters)
        self.embed_dim = embed_dim + (pooled if pooled_embedding else 0)
        self.pool_norm = nn.BatchNorm1d(pooled, eps=TF_BN_EPS)
        self.dense = nn.Linear(pooled, embed_dim)
        self.dense_norm = nn.BatchNorm1d(embed_dim, eps=TF_BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.tag_head = nn.Linear(embed_dim, n_tags)
        self.taggram_dim = embed_dim
        # The teacher's own head is a reference (the student's tag head starts from it), never
        # trained: without gradients it is no unused parameter for DDP.
        self.tag_head.requires_grad_(False)

    def frontend_modules(self) -> list[nn.Module]:
        """The musically motivated front-end (input BatchNorm, timbral and temporal filters).

        It holds ~80% of the compute but only ~0.2 M of the weights: freezing it
        (``--model.freeze frontend``) makes a fine-tuning step ~3.5x cheaper on a CPU.
        """
        return [self.input_norm, *self.timbral, *self.temporal]

    def features(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        """musicnn's intermediate representations (its extractor's names), before dropout.

        Returns ``max_pool`` and ``mean_pool`` (batch, 753): the front- and mid-end features pooled
        over time; ``penultimate`` (batch, embed_dim): the embedding.
        """
        # musicnn convolves (time, frequency) images: (batch, 1, n_mels, T) → (batch, 1, T, n_mels).
        x = self.input_norm(spec.transpose(2, 3))
        front = torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)
        mid1 = self.midend[0](front)
        mid2 = self.midend[1](mid1) + mid1
        mid3 = self.midend[2](mid2) + mid2
        features = torch.cat([front, mid1, mid2, mid3], dim=1)  # (batch, 753, T)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)
        # TensorFlow flattens a (channels, [max, mean]) array: interleave max and mean per channel.
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        hidden = F.relu(self.dense(self.dropout(self.pool_norm(pooled))))
        return {
            "max_pool": max_pool,
            "mean_pool": mean_pool,
            "penultimate": self.dense_norm(hidden),
        }


def load_weights(
    module: nn.Module, state_dict: Mapping[str, Any], source: str | os.PathLike, what: str
) -> None:
    """``module.load_state_dict(state_dict)``, a mismatch told in one line naming ``source`` and
    ``what`` the weights were meant for (torch's last line of detail).

    Raises:
        ValueError: the weights do not fit the module.
    """
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        detail = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ValueError(
            f"{source}: weights do not fit the {what} ({detail[-1] if detail else err})"
        ) from err


def load_pretrained(path: str | os.PathLike) -> dict[str, Any]:
    """Read weights written by ``scripts/convert_musicnn.py`` (tensors and plain values only).

    Returns:
        ``{"state_dict": ..., "tag_names": [...], "model": "MSD_musicnn"}``.

    Raises:
        ValueError: one line naming the file when it is missing or not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path}: pretrained weights not found (make them with scripts/convert_musicnn.py)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: not a readable weights file ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})"
        ) from err
    if not isinstance(data, Mapping) or not isinstance(data.get("state_dict"), Mapping):
        raise ValueError(f"{path}: not a converted musicnn file (no 'state_dict')")
    return dict(data)


def init_from_pretrained(
    backbone: MusicnnBackbone,
    path: str | os.PathLike,
    tag_head: nn.Linear | None = None,
    tag_names: list[str] | None = None,
) -> list[str]:
    """Load converted weights into ``backbone``; start ``tag_head`` from the teacher's taggram.

    Every row of ``tag_head`` whose name is one of the teacher's tags gets the teacher's weights on
    the first ``taggram_dim`` inputs (the penultimate layer) and zeros on the pooled features a
    ``*_pooled`` embedding appends, so a student trained on the teacher's tags starts out agreeing
    with it.

    Returns:
        The tag names that were initialised from the teacher.
    """
    data = load_pretrained(path)
    load_weights(backbone, data["state_dict"], path, "musicnn backbone")
    copied: list[str] = []
    if tag_head is not None and tag_names:
        teacher = {name: i for i, name in enumerate(data.get("tag_names") or [])}
        width = backbone.taggram_dim
        with torch.no_grad():
            for row, name in enumerate(tag_names):
                if name in teacher:
                    tag_head.weight[row].zero_()
                    tag_head.weight[row, :width] = backbone.tag_head.weight[teacher[name]]
                    tag_head.bias[row] = backbone.tag_head.bias[teacher[name]]
                    copied.append(name)
    return copied
