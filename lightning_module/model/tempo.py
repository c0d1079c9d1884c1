"""Tempo as classification over log-spaced BPM bins (as tempo CNNs do), decoded back to BPM.

A plain regression on BPM averages the octaves a clip is ambiguous between (a 70/140 BPM song
regresses to 105, right for nobody); a distribution over bins keeps both peaks and the argmax
picks one. The target is a Gaussian bump (``sigma`` bins wide) around the true tempo's bin.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tempo_bins import TempoBins, tempo_bins


class TempoTarget:
    """Where a batch keeps the tempo: the ``tempo`` column of its standardised ``features``.

    ``bpm(batch)`` → ((batch,) BPM, (batch,) bool rows that have a tempo).
    """

    def __init__(self, bins: TempoBins, index: int, mean: float, std: float) -> None:
        self.bins, self.index, self.mean, self.std = bins, index, mean, std

    def bpm(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = batch["feature_mask"][:, self.index].bool()
        return batch["features"][:, self.index].float() * self.std + self.mean, rows


def tempo_branch(spec: TaggerSpec) -> TempoBranch | None:
    """The tempo head of a model with this spec (None: it has none)."""
    if not spec.tempo_bins:
        return None
    frame_rate = spec.sample_rate / spec.logmel.hop_length
    return TempoBranch(
        spec.tempo_bins, frame_rate, spec.tempo_min, spec.tempo_max, spec.logmel.n_mels
    )


def tempo_target(spec: TaggerSpec) -> TempoTarget | None:
    """Where training batches keep the tempo, for a model with a tempo head.

    Raises:
        ValueError: a tempo head without a ``tempo`` feature to learn from.
    """
    bins = tempo_bins(spec)
    if bins is None:
        return None
    if "tempo" not in spec.feature_names:
        raise ValueError("--model.tempo_bins needs a 'tempo' feature among the feature names")
    index = spec.feature_names.index("tempo")
    return TempoTarget(bins, index, spec.feature_mean[index], spec.feature_std[index])


class TempoBranch(nn.Module):
    """The tempo head: periodicity of onsets, read from the log-mel, to logits over tempo bins.

    A CNN embedding pooled over time keeps little of *when* things happen, which is what tempo
    is; so this branch computes it directly, as tempo estimators do: onset strength per band group
    (positive log-mel differences over time), its autocorrelation at every lag between
    ``tempo_max`` and ``tempo_min`` BPM, and a small MLP from those lags to the bins (it learns
    which of the periodicities listeners tap). One forward pass, no signal processing outside it;
    the autocorrelation is one batched product over all lags.

    Shapes: (batch, 1, n_mels, frames) log-mel → (batch, n_bins) logits.
    """

    def __init__(
        self,
        n_bins: int,
        frame_rate: float,
        tempo_min: float,
        tempo_max: float,
        n_mels: int,
        groups: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.groups = max(1, min(groups, n_mels))
        self.lags = list(
            range(
                max(1, math.floor(60.0 * frame_rate / tempo_max)),
                math.ceil(60.0 * frame_rate / tempo_min) + 1,
            )
        )
        self.mlp = nn.Sequential(
            nn.Linear(self.groups * len(self.lags), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_bins),
        )

    def onset_autocorrelation(self, spec: torch.Tensor) -> torch.Tensor:
        """(batch, 1, n_mels, frames) → (batch, groups, n_lags), normalised by lag 0."""
        spec = spec.float()[:, 0]
        batch, mels, frames = spec.shape
        bands = spec[:, : mels - mels % self.groups].reshape(batch, self.groups, -1, frames)
        onset = torch.relu(bands[..., 1:] - bands[..., :-1]).mean(2)  # (batch, groups, T)
        onset = onset - onset.mean(-1, keepdim=True)
        energy = (onset * onset).mean(-1).clamp(min=1e-8)
        # Every lag at once: the onset curve, zero-padded by the longest lag, seen through windows
        # of (longest lag + 1) frames, so ahead[..., t, k] = onset[t + k]; the product with
        # onset[t] summed over t is the autocorrelation at lag k, over the T - k frames both
        # copies cover (none when k > T: reads as 0). The window is a constant of the
        # architecture, never the input length, so ONNX export keeps the length dynamic (an
        # unfold as long as the input froze it), and it is one op, not one per lag.
        longest = self.lags[-1]
        ahead = torch.nn.functional.pad(onset, (0, longest)).unfold(-1, longest + 1, 1)
        products = (ahead * onset[..., None]).sum(-2)[..., self.lags[0] :]
        ones = torch.nn.functional.pad(torch.ones_like(onset[:1, :1]), (0, longest))
        overlap = ones.unfold(-1, longest + 1, 1).sum(-2)[..., self.lags[0] :]
        acf = torch.where(overlap > 0, products / overlap.clamp(min=1), torch.zeros_like(products))
        return acf / energy[..., None]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.onset_autocorrelation(spec).flatten(1))
