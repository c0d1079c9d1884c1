"""The key head: the DSP key estimator on generated tonal audio, and pitch equivariance."""

import numpy as np
import pytest
import torch

from datamodules.analysis.key import KEY_NAMES, key_index
from datamodules.loading.augmentation import speed_change, speed_change_targets
from lightning_module.model.key import KeyBranch
from lightning_module.model.network import build_network
from lightning_module.model.settings import LogMelSettings
from lightning_module.model.spec import TaggerSpec
from tests.tonal_audio import cadence

RATE = 16000


def _estimate(branch: KeyBranch, wave: np.ndarray) -> str:
    with torch.no_grad():
        return KEY_NAMES[int(branch(torch.from_numpy(wave)[None]).argmax())]


@pytest.mark.parametrize(
    ("tonic", "mode"), [("C", "major"), ("A", "minor"), ("F#", "major"), ("Eb", "minor")]
)
def test_dsp_key_teacher_finds_the_key_of_a_cadence(tonic: str, mode: str) -> None:
    teacher = KeyBranch(RATE, hidden=0).eval()  # Krumhansl-Kessler profiles, nothing learned
    assert _estimate(teacher, cadence(tonic, mode, RATE)) == f"{tonic} {mode}"


def test_pitch_shift_moves_the_key_label_with_the_audio() -> None:
    teacher = KeyBranch(RATE, hidden=0).eval()
    wave = cadence("C", "major", RATE)
    for semitones in (-2, 1, 2):
        shifted = speed_change(wave, semitones)
        _, label = speed_change_targets(semitones, key=key_index("C", "major"))
        assert _estimate(teacher, shifted) == KEY_NAMES[label]
        assert shifted.size == pytest.approx(wave.size / 2 ** (semitones / 12), abs=2)


def test_speed_change_scales_the_tempo_label() -> None:
    tempo, key = speed_change_targets(2, tempo=120.0, key=None)
    assert tempo == pytest.approx(120.0 * 2 ** (2 / 12)) and key is None
    with pytest.raises(ValueError, match="whole semitones"):
        speed_change_targets(0.5, key=3)


def test_a_learned_scorer_stays_pitch_equivariant() -> None:
    torch.manual_seed(0)
    branch = KeyBranch(RATE, hidden=8).eval()
    torch.nn.init.normal_(branch.hidden[-1].conv.weight)  # make the hidden path count
    x = torch.randn(3, 4, 12)
    scores = branch.score(x).reshape(3, 2, 12)
    rolled = branch.score(torch.roll(x, 5, dims=-1)).reshape(3, 2, 12)
    assert torch.allclose(torch.roll(scores, 5, dims=-1), rolled, atol=1e-5)


def test_network_with_a_key_head_outputs_24_logits() -> None:
    spec = TaggerSpec(
        genre_names=("a", "b"),
        key_names=KEY_NAMES,
        crop_seconds=1.0,
        logmel=LogMelSettings(n_mels=32),
    )
    net = build_network(spec).eval()
    with torch.no_grad():
        out = net(torch.randn(2, RATE))
    assert out["key"].shape == (2, 24)
    assert any(k.startswith("key.profiles.") for k in net.state_dict())
    assert "key" not in build_network(TaggerSpec(genre_names=("a", "b")))(torch.randn(1, RATE))
