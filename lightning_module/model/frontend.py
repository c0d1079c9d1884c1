"""Waveform → log-mel spectrogram, as ``nn.Module``s that run on the model's device."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from lightning_module.model.settings import LogMelSettings


class LogMel(nn.Module):
    """Log-mel spectrogram, always computed in float32 (mel power overflows fp16).

    Args:
        settings: FFT, hop, mel bands and compression (:class:`LogMelSettings`; ``db`` gives
            10·log10(power + 1e-10) clipped 80 dB under the peak of each clip, ``log1p`` gives
            log10(10000·power + 1), the input of the musicnn models).
        sample_rate: input sample rate in Hz.

    Shapes: (batch, samples) → (batch, 1, n_mels, frames) float32, frames = samples // hop + 1.
    """

    def __init__(
        self, settings: LogMelSettings = LogMelSettings(), sample_rate: int = 16000
    ) -> None:
        super().__init__()
        if settings.compression not in ("db", "log1p"):
            raise ValueError(f"compression must be 'db' or 'log1p', not {settings.compression!r}")
        self.compression = settings.compression
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=settings.n_fft,
            hop_length=settings.hop_length,
            n_mels=settings.n_mels,
            f_min=settings.f_min,
            f_max=settings.f_max,
            power=2.0,
            norm=settings.mel_norm,
            mel_scale=settings.mel_scale,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            power = self.mel(wave.float())
            if self.compression == "log1p":
                spec = torch.log10(10000.0 * power + 1.0)
            else:
                spec = 10.0 * torch.log10(power + 1e-10)
                peak = spec.amax(dim=(-2, -1), keepdim=True)
                spec = torch.maximum(spec, peak - 80.0)
        return spec.unsqueeze(1)


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019), applied only in training mode.

    Args:
        freq_mask: maximum width of each frequency mask, in mel bands (0 disables).
        time_mask: maximum width of each time mask, in frames (0 disables).
        n_masks: masks of each kind per example.

    Shapes: (batch, 1, n_mels, frames) → same.
    """

    def __init__(self, freq_mask: int = 12, time_mask: int = 24, n_masks: int = 2) -> None:
        super().__init__()
        masks: list[nn.Module] = []
        for _ in range(n_masks):
            if freq_mask > 0:
                masks.append(torchaudio.transforms.FrequencyMasking(freq_mask, iid_masks=True))
            if time_mask > 0:
                masks.append(torchaudio.transforms.TimeMasking(time_mask, iid_masks=True))
        self.masks = nn.Sequential(*masks)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.training or len(self.masks) == 0:
            return spec
        # Mask to the clip's mean rather than 0: 0 is loud in dB units.
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        return self.masks(spec - mean) + mean
