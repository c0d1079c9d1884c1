from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.audio import (
    AudioError,
    frame_windows,
    load_audio,
    window_starts,
    window_weights,
)
from tests.conftest import write_tone


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("t.wav", {}), ("t.flac", {}), ("t.ogg", {}), ("t.mp3", {}), ("stereo.wav", {"channels": 2})],
)
def test_decodes_formats_to_mono_at_target_rate(tmp_path: Path, name: str, kwargs: dict) -> None:
    path = write_tone(tmp_path / name, seconds=2.0, sr=22050, **kwargs)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 32000) < 1200  # mp3 adds encoder delay/padding
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 16000 / wave.size
    assert abs(peak_hz - 440) < 5


def test_offset_and_duration_select_a_slice(tmp_path: Path) -> None:
    sr = 8000
    ramp = np.linspace(-0.5, 0.5, 4 * sr, dtype=np.float32)
    sf.write(tmp_path / "ramp.wav", ramp, sr, subtype="FLOAT")
    wave = load_audio(tmp_path / "ramp.wav", sr, offset=1.0, duration=2.0)
    assert wave.size == 2 * sr
    assert wave[0].item() == pytest.approx(ramp[sr], abs=1e-6)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 50), "not a readable audio file"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: None, "file not found"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert str(path) in str(err.value) and reason in str(err.value) and "\n" not in str(err.value)


def test_too_short_and_silent_are_refused_when_asked(tmp_path: Path) -> None:
    write_tone(tmp_path / "short.wav", seconds=0.5)
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "short.wav", 16000, min_duration=1.0)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        load_audio(tmp_path / "silent.wav", 16000, allow_silence=False)


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    x = np.zeros(16000, dtype=np.float32)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav", 16000)


def test_windows_cover_the_whole_clip() -> None:
    assert window_starts(100, 40, 20) == [0, 20, 40, 60]
    assert window_starts(30, 40, 20) == [0]
    assert window_starts(105, 40, 40) == [0, 40, 65]
    windows = frame_windows(np.arange(105.0, dtype=np.float32), 40, 40)
    assert windows.shape == (3, 40) and windows[-1, -1].item() == 104.0


def test_a_tail_shorter_than_min_tail_gets_no_window_of_its_own() -> None:
    # a GTZAN clip: 30.013 s, 6 s windows every 3 s; the 13 ms tail is no reason for a window
    n, window, hop = 480_208, 96_000, 48_000
    assert window_starts(n, window, hop)[-2:] == [384_000, 384_208]  # the old duplicate
    assert window_starts(n, window, hop, min_tail=12_000)[-1] == 384_000
    # 2 s of tail is worth a window of its own
    assert window_starts(n + 32_000, window, hop, min_tail=12_000)[-1] == n + 32_000 - window


def test_window_weights_count_each_stretch_of_audio_once() -> None:
    n, window, hop = 100, 40, 20
    assert window_weights(window_starts(n, window, hop), n, window, hop) == [1.0] * 4
    n = 110  # grid windows 0, 20, 40, 60 end at 100: the end window adds 10 samples = half a hop
    starts = window_starts(n, window, hop)
    assert starts == [0, 20, 40, 60, 70]
    assert window_weights(starts, n, window, hop) == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert window_weights([0], 30, window, hop) == [1.0]
