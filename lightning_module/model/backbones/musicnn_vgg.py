"""musicnn's VGG taggers (``MSD_vgg`` / ``MTT_vgg``, Pons & Serra 2019) re-implemented in PyTorch.

The architecture of ``vgg()`` in the ``musicnn`` wheel's ``models.py``, layer for layer: BatchNorm
on the input, five blocks of 3x3 convolution (128 filters, TensorFlow 'same' padding, which for a
3x3 kernel at stride 1 is one zero on every side) → ReLU → BatchNorm → max-pool ('valid'), with
pool sizes / strides (time, frequency) of (4, 1)/(2, 2), then (2, 2)/(2, 2) three times, then
(4, 4)/(4, 4); then the flattened last pool (2 time steps x 1 band x 128 channels = 256 values
on a 187-frame patch) feeds one dense layer of 50 tag logits.
:mod:`lightning_module.teacher.musicnn` converts the TensorFlow checkpoint into this module's
state dict; weights are made on the user's machine and never committed.

Its input is the same as the ``*_musicnn`` models' (:func:`~.musicnn.musicnn_logmel`: 16 kHz, n_fft
512, hop 256, 96 mel bands, logC; their ``config.json`` says ``n_frames`` 187 and ``pad_short``
``repeat-pad``). Unlike musicnn, the dense layer reads a map whose size depends on the frame count,
so the network itself only takes one patch. Any number of frames is handled as musicnn trained
and tags (:meth:`MusicnnVggBackbone.patches`):

* fewer than 187 frames: repeated along time up to 187 (musicnn's ``repeat-pad``);
* 187 to :data:`MAX_SINGLE_FRAMES` (193) frames: one pass over the whole input, as the TensorFlow
  graph computes it (these all give a 2-step last pool; the 3 s windows of our frontend are 188);
* more: non-overlapping 187-frame patches, the last one aligned to the end, run as a batch; the
  clip's outputs are the patches' means (max for ``max_pool``). The dense head is linear, so the
  taggram logits are exactly the mean of the patches' logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_module.model.backbones.musicnn import PATCH_FRAMES, TF_BN_EPS, PretrainedTagger

#: (time, frequency) max-pool size and stride after each convolution, as in musicnn's ``vgg()``.
POOLS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 1), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((4, 4), (4, 4)),
)


def _pooled_length(frames: int, axis: int) -> int:
    """Length of ``axis`` (0 time, 1 frequency) after the five 'valid' pools (≤ 0: none left)."""
    for size, stride in POOLS:
        frames = (frames - size[axis]) // stride[axis] + 1
    return frames


#: The longest input with the same last-pool size as one 187-frame patch (2 steps): run whole.
MAX_SINGLE_FRAMES = max(
    t for t in range(PATCH_FRAMES, 2 * PATCH_FRAMES) if _pooled_length(t, 0) == 2
)


class _VggBlock(nn.Module):
    """Conv2d 3x3 'same' → ReLU → BatchNorm → max-pool ('valid').

    Shapes: (batch, in_channels, frames, bands) → (batch, filters, frames', bands').
    """

    def __init__(
        self, in_channels: int, filters: int, pool: tuple[int, int], stride: tuple[int, int]
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, 3, padding=1)
        self.norm = nn.BatchNorm2d(filters, eps=TF_BN_EPS)
        self.pool = nn.MaxPool2d(pool, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(F.relu(self.conv(x))))


class MusicnnVggBackbone(PretrainedTagger):
    """musicnn's VGG as a backbone: log-mel → 256-d embedding (what its dense layer reads) + head.

    Args:
        n_mels: mel bands of the input (96 for the pretrained weights; the embedding size
            depends on it, 96 gives one band in the last pool).
        n_tags: outputs of the taggram head (50 for MSD and MTT).
        filters: filters of each convolution (128 for ``*_vgg``).
        dropout: dropout on the flattened last pool (musicnn trained with 0.5).
        pooled_embedding: the embedding is the flattened last pool *and* every block's output
            max- and mean-pooled over time and frequency (``256 + 2 * 640`` values), the richer
            input a linear probe of the frozen network reads best (``musicnn_vgg_pooled``).

    Shapes: ``forward``: (batch, 1, n_mels, frames) → (batch, self.embed_dim); ``taggram``:
    (batch, 1, n_mels, frames) → (batch, n_tags) logits. Any number of frames ≥ 1 (see the module
    docstring for how frame counts other than 187 are handled).
    """

    #: Embedding size of the pretrained ``*_vgg`` models: 2 time steps x 1 band x 128 filters.
    EMBED_DIM = 256
    BLOCKS = len(POOLS)

    def __init__(
        self,
        n_mels: int = 96,
        n_tags: int = 50,
        filters: int = 128,
        dropout: float = 0.5,
        pooled_embedding: bool = False,
    ) -> None:
        super().__init__()
        bands = _pooled_length(n_mels, 1)
        if bands < 1:
            raise ValueError(f"the musicnn VGG needs at least 16 mel bands, not {n_mels}")
        self.pooled_embedding = pooled_embedding
        self.input_norm = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.blocks = nn.ModuleList(
            _VggBlock(1 if i == 0 else filters, filters, pool, stride)
            for i, (pool, stride) in enumerate(POOLS)
        )
        self.taggram_dim = _pooled_length(PATCH_FRAMES, 0) * bands * filters
        pooled = 2 * self.BLOCKS * filters
        self.embed_dim = self.taggram_dim + (pooled if pooled_embedding else 0)
        self.dropout = nn.Dropout(dropout)
        self.tag_head = nn.Linear(self.taggram_dim, n_tags)
        # The teacher's own head is a reference (the student's tag head starts from it), never
        # trained: without gradients it is no unused parameter for DDP.
        self.tag_head.requires_grad_(False)

    def frontend_modules(self) -> list[nn.Module]:
        """The input BatchNorm and the first two blocks: ~76% of the multiply-adds of a patch
        (the second convolution alone, 128→128 at half resolution, is ~74%), 0.15 M weights."""
        return [self.input_norm, self.blocks[0], self.blocks[1]]

    @staticmethod
    def patches(spec: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(batch, 1, n_mels, frames) → (batch · n, 1, frames', n_mels) patches in musicnn's
        (time, frequency) layout, and n: the patches of each clip, consecutive.

        frames' is 187 when the input is repeat-padded or cut, else the input's own frame count
        (187 to :data:`MAX_SINGLE_FRAMES`).
        """
        x = spec.transpose(2, 3)  # musicnn convolves (time, frequency) images
        frames = x.shape[2]
        if frames < PATCH_FRAMES:  # musicnn's "repeat-pad" of short inputs
            x = x.repeat(1, 1, -(-PATCH_FRAMES // frames), 1)[:, :, :PATCH_FRAMES]
        if x.shape[2] <= MAX_SINGLE_FRAMES:
            return x, 1
        # Non-overlapping patches, the last aligned to the end (the teacher's ``patches``).
        starts = list(range(0, frames - PATCH_FRAMES + 1, PATCH_FRAMES))
        if starts[-1] != frames - PATCH_FRAMES:
            starts.append(frames - PATCH_FRAMES)
        cut = torch.stack([x[:, :, s : s + PATCH_FRAMES] for s in starts], dim=1)
        return cut.flatten(0, 1), len(starts)

    def features(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        """The VGG's intermediate representations, before dropout.

        Returns ``max_pool`` and ``mean_pool`` (batch, 5 · filters = 640): each block's output
        (after its max-pool: musicnn's extractor features ``pool1`` … ``pool5``) max- or
        mean-pooled over time and frequency, blocks in order; ``penultimate`` (batch, 256): the
        flattened last pool, what the dense tag layer reads (TensorFlow's (time, band, channel)
        order). A clip of several patches gets the max (``max_pool``) or the mean (the others)
        over its patches.
        """
        x, n = self.patches(spec)
        x = self.input_norm(x)
        maxima, means = [], []
        for block in self.blocks:
            x = block(x)
            maxima.append(x.amax(dim=(2, 3)))
            means.append(x.mean(dim=(2, 3)))
        penultimate = x.permute(0, 2, 3, 1).flatten(1)
        max_pool, mean_pool = torch.cat(maxima, dim=1), torch.cat(means, dim=1)
        return {
            "max_pool": max_pool.unflatten(0, (-1, n)).amax(dim=1),
            "mean_pool": mean_pool.unflatten(0, (-1, n)).mean(dim=1),
            "penultimate": penultimate.unflatten(0, (-1, n)).mean(dim=1),
        }
