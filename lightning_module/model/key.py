"""The key head: chroma from a long-window spectrogram, read by a pitch-rotation-equivariant net.

Key is a property of pitch classes, which the log-mel (64-96 bands, ~30 Hz FFT bins) cannot
resolve below a few hundred Hz; so this branch takes its own spectrogram of the waveform, with
windows long enough to tell semitones apart down to the bass, folds it into 12 pitch classes
(chroma) for a bass and a treble band, summarises each over the window, and scores the 24 keys.

The scorer is a circular convolution over the 12 pitch classes: transposing the audio rolls its
chroma, and rolls the 24 scores with it. So the head learns one profile per mode, not one per
key, and pitch-shift augmentation is built in (a GTZAN clip in E minor teaches every minor key).
With its hidden layer off and Krumhansl-Kessler profiles as weights it is the classical DSP
key estimator (:meth:`KeyBranch.profile_weights`), the teacher of clips without a labelled key.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio
from torch import nn

from lightning_module.model.spec import TaggerSpec

#: Krumhansl & Kessler (1982) probe-tone ratings, tonic first: how well each pitch class fits.
KRUMHANSL_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KRUMHANSL_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)

#: (low, high) Hz of the chroma bands: the bass names the tonic more often than the chords do.
CHROMA_BANDS: tuple[tuple[float, float], ...] = ((55.0, 220.0), (220.0, 2000.0))
#: The key spectrogram's sample rate: the chroma needs nothing above 2 kHz, and a 4x shorter FFT
#: of the decimated audio has the same frequency resolution at a quarter of the cost.
KEY_RATE = 4000


def lowpass_kernel(factor: int, taps_per_phase: int = 16) -> torch.Tensor:
    """(1, 1, taps) windowed-sinc low-pass for decimating by ``factor`` (cut-off at 0.9 of the
    new Nyquist frequency, Blackman window), unit gain at 0 Hz."""
    taps = factor * taps_per_phase + 1
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = 0.9 / factor
    kernel = cutoff * np.sinc(cutoff * n) * np.blackman(taps)
    return torch.from_numpy((kernel / kernel.sum()).astype(np.float32))[None, None]


def chroma_filterbank(
    sample_rate: int, n_fft: int, low: float, high: float, width: float = 0.5
) -> torch.Tensor:
    """(n_fft // 2 + 1, 12) weights folding FFT bins between ``low`` and ``high`` Hz into pitch
    classes: each bin votes for the pitch class nearest its frequency, with a triangular weight
    that falls to 0 at ``width`` semitones from the equal-tempered pitch (A4 = 440 Hz)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    bank = np.zeros((freqs.size, 12), dtype=np.float32)
    inside = (freqs >= low) & (freqs <= high)
    midi = 69.0 + 12.0 * np.log2(np.maximum(freqs[inside], 1e-6) / 440.0)
    nearest = np.round(midi)
    weight = np.clip(1.0 - np.abs(midi - nearest) / width, 0.0, 1.0)
    bank[np.flatnonzero(inside), nearest.astype(int) % 12] = weight
    return torch.from_numpy(bank)


class CircularConv(nn.Module):
    """A convolution over the 12 pitch classes that wraps around (B is next to C).

    Shapes: (batch, in_channels, 12) → (batch, out_channels, 12); rolling the input by k pitch
    classes rolls the output by k.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=12, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # out[j] = sum_i w[i] x[(j + i) mod 12]: the input followed by its first 11 classes.
        return self.conv(torch.cat([x, x[..., :11]], dim=-1))


class KeyBranch(nn.Module):
    """Waveform → logits over the 24 keys (:data:`datamodules.analysis.key.KEY_NAMES` order).

    Args:
        sample_rate: input sample rate, Hz.
        n_fft: window of the key spectrogram in input samples (8192 at 16 kHz: 0.5 s, 2 Hz bins;
            a semitone apart at 55 Hz is 3.3 Hz). The audio is first decimated to
            :data:`KEY_RATE` (a fixed low-pass convolution), so the FFT itself is shorter by the
            same factor.
        hidden: channels of the hidden circular convolution (0: the linear profile scorer only).

    Shapes: (batch, samples) → (batch, 24) logits, index ``mode * 12 + tonic``.
    """

    def __init__(self, sample_rate: int, n_fft: int = 8192, hidden: int = 16) -> None:
        super().__init__()
        self.factor = max(1, sample_rate // KEY_RATE)
        rate, fft = sample_rate // self.factor, n_fft // self.factor
        self.register_buffer("lowpass", lowpass_kernel(self.factor), persistent=False)
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=fft, hop_length=fft // 2, power=2.0
        )
        banks = [chroma_filterbank(rate, fft, lo, hi) for lo, hi in CHROMA_BANDS]
        self.register_buffer("filterbank", torch.cat(banks, dim=1), persistent=False)
        channels = 2 * len(CHROMA_BANDS)  # each band's mean and peak chroma over the window
        self.profiles = CircularConv(channels, 2, bias=False)
        self.hidden = (
            nn.Sequential(CircularConv(channels, hidden), nn.ReLU(), CircularConv(hidden, 2))
            if hidden
            else None
        )
        self.mode_bias = nn.Parameter(torch.zeros(2, 1))
        self.set_profiles(KRUMHANSL_MAJOR, KRUMHANSL_MINOR)

    @torch.no_grad()
    def set_profiles(self, major: tuple[float, ...], minor: tuple[float, ...]) -> None:
        """Score keys by correlation of the mean chroma with these tonic-first profiles (both
        bands alike, peaks ignored), and silence the hidden layer: the DSP key estimator."""
        weight = torch.zeros_like(self.profiles.conv.weight)  # (2 modes, channels, 12)
        for mode, profile in enumerate((major, minor)):
            p = torch.tensor(profile)
            weight[mode, 0 : len(CHROMA_BANDS)] = (p - p.mean()) / p.std() * 4.0
        self.profiles.conv.weight.copy_(weight)
        self.mode_bias.zero_()
        if self.hidden is not None:
            self.hidden[-1].conv.weight.zero_()
            self.hidden[-1].conv.bias.zero_()

    def chroma(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, 2 * bands, 12): per band, the mean and the peak over time of
        frame chroma normalised to sum 1, each log-compressed and standardised over the 12 classes
        (loudness and timbre cancel; only the shape across pitch classes is left)."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            low = wave.float()
            if self.factor > 1:  # decimate: low-pass, keep every factor-th sample
                low = torch.nn.functional.conv1d(
                    low[:, None],
                    self.lowpass,
                    stride=self.factor,
                    padding=self.lowpass.shape[-1] // 2,
                )[:, 0]
            power = self.spectrogram(low)  # (batch, freqs, frames)
            chroma = torch.einsum("bft,fc->btc", power, self.filterbank)  # (batch, frames, 24)
            bands = chroma.reshape(*chroma.shape[:2], len(CHROMA_BANDS), 12)
            frame = bands / bands.sum(-1, keepdim=True).clamp(min=1e-10)
            stats = torch.cat([frame.mean(1), frame.amax(1)], dim=1)  # (batch, 2 * bands, 12)
            stats = torch.log(stats + 1e-3)
            stats = stats - stats.mean(-1, keepdim=True)
            return stats / stats.std(-1, keepdim=True).clamp(min=1e-3)

    def score(self, chroma: torch.Tensor) -> torch.Tensor:
        """(batch, 2 * bands, 12) chroma statistics (:meth:`chroma`) → (batch, 24) logits."""
        scores = self.profiles(chroma)
        if self.hidden is not None:
            scores = scores + self.hidden(chroma)
        return (scores + self.mode_bias).flatten(1)  # (batch, 2 modes * 12 tonics)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.score(self.chroma(wave))


def key_branch(spec: TaggerSpec) -> KeyBranch | None:
    """The key head of a model with this spec (None: it has none)."""
    if not spec.key_names:
        return None
    return KeyBranch(spec.sample_rate, n_fft=spec.key_n_fft, hidden=spec.key_hidden)


def pitch_ratio(semitones: float) -> float:
    """Speed ratio that moves pitch by ``semitones`` (and tempo by the same factor)."""
    return math.pow(2.0, semitones / 12.0)
