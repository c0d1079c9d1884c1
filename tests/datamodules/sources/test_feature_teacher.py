"""The ``features`` source: teacher values for empty cells, provenance, skips, resume, vibenet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

pytest.importorskip("librosa", reason="the features extra (make test installs it)")
pytest.importorskip("pyloudnorm", reason="the features extra (make test installs it)")

from datamodules.analysis.vibenet import VIBENET_FEATURES, vibenet_executable  # noqa: E402
from datamodules.manifest import read_manifest, write_manifest  # noqa: E402
from datamodules.sources.registry import build_source  # noqa: E402
from tests.datamodules.analysis.test_teachers import SR, click_track, pink_noise  # noqa: E402


@pytest.fixture()
def manifest(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "click120.wav", click_track(120.0), SR)
    sf.write(audio / "click90.flac", click_track(90.0), SR)
    sf.write(audio / "pink.wav", pink_noise(10.0, SR, -20.0).astype(np.float32), SR)
    sf.write(audio / "silent.wav", np.zeros(6 * SR, dtype=np.float32), SR)
    (audio / "broken.mp3").write_bytes(b"ID3\x03\x00garbage" * 10)
    df = pd.DataFrame(
        {
            "track_id": ["click120", "click90", "pink", "silent", "broken"],
            "audio_path": [
                str(audio / n)
                for n in ("click120.wav", "click90.flac", "pink.wav", "silent.wav", "broken.mp3")
            ],
            "split": ["train", "train", "val", "train", "test"],
            "source": "mine",
            # A listener's tempo for click90 (human): never overwritten by a teacher.
            "tempo": [np.nan, 91.0, np.nan, np.nan, np.nan],
            "provenance_tempo": [pd.NA, "human", pd.NA, pd.NA, pd.NA],
        }
    )
    path = tmp_path / "in" / "manifest.csv"
    write_manifest(df, path)
    return path


def build(manifest, out, **config):
    return build_source("features", {"manifest": str(manifest), "progress": False, **config}, out)


def test_teachers_fill_empty_cells_and_keep_human_values(manifest, tmp_path) -> None:
    out = tmp_path / "out"
    summary = build(manifest, out, vibenet="off")
    df = read_manifest(out / "manifest.csv", check_audio=False).set_index("track_id")
    tempo = df.at["click120", "tempo"]
    assert any(abs(tempo - f * 120) <= 2 * f for f in (0.5, 1, 2)), tempo
    assert df.at["click120", "provenance_tempo"] == "teacher:librosa-tempo"
    # The human tempo stays; the teacher's own estimate is kept beside it for evaluation.
    assert df.at["click90", "tempo"] == 91.0 and df.at["click90", "provenance_tempo"] == "human"
    teacher = df.at["click90", "teacher_tempo"]
    assert any(abs(teacher - f * 90) <= 2 * f for f in (0.5, 1, 2)), teacher
    assert df.at["pink", "loudness"] == pytest.approx(-19.9, abs=0.5)
    assert df.at["pink", "provenance_loudness"] == "teacher:bs1770"
    # Silent and corrupt audio: no value, a reason (never -inf), and the row is kept.
    assert np.isnan(df.at["silent", "loudness"]) and np.isnan(df.at["broken", "tempo"])
    skipped = pd.read_csv(out / "skipped.csv")
    reasons = dict(
        zip(skipped["track_id"] + "/" + skipped["reason"], skipped["detail"], strict=True)
    )
    assert "silent" in reasons["silent/no loudness"] and "silent" in reasons["silent/no tempo"]
    assert "broken/bad audio" in reasons
    assert summary.filled["tempo"] == 2 and summary.kept["tempo"] == 1  # click120, pink
    assert json.loads((out / "summary.json").read_text())["rows"] == 5


def test_a_rerun_or_a_resumed_run_computes_nothing_it_has(manifest, tmp_path) -> None:
    out = tmp_path / "out"
    first_rows = read_manifest(manifest, check_audio=False).iloc[:2]
    partial = tmp_path / "partial" / "manifest.csv"
    write_manifest(first_rows, partial)
    # A run that only got through two clips (as if killed) leaves their values in the cache.
    build(partial, out, vibenet="off")
    resumed = build(manifest, out, vibenet="off")
    assert resumed.cached["tempo"] == 2 and resumed.computed["tempo"] == 2  # pink, silent
    before = (out / "manifest.csv").read_bytes()
    again = build(manifest, out, vibenet="off")
    assert again.computed == {} and (out / "manifest.csv").read_bytes() == before


def test_bad_config_is_one_line(manifest, tmp_path) -> None:
    with pytest.raises(ValueError, match="vibenet must be auto, on or off"):
        build(manifest, tmp_path / "o", vibenet="sometimes")
    with pytest.raises(ValueError, match="manifest is required"):
        build_source("features", {}, tmp_path / "o")
    with pytest.raises(ValueError, match="vibenet: command not found"):
        build(manifest, tmp_path / "o", vibenet="on", vibenet_command="/nonexistent/vibenet")


@pytest.mark.skipif(vibenet_executable() is None, reason="vibenet not installed (make vibenet)")
def test_vibenet_runs_as_a_separate_process_for_the_seven_features(manifest, tmp_path) -> None:
    out = tmp_path / "out"
    summary = build(manifest, out, vibenet="on", tempo=False, loudness=False)
    df = read_manifest(out / "manifest.csv", check_audio=False).set_index("track_id")
    for feature in VIBENET_FEATURES:
        values = df.loc[["click120", "click90", "pink"], feature]
        assert values.between(0, 1).all(), (feature, values)
        assert (df.loc[["click120", "pink"], f"provenance_{feature}"] == "teacher:vibenet").all()
    assert summary.computed["vibenet"] == 5
    skipped = pd.read_csv(out / "skipped.csv").set_index("track_id")
    assert skipped.at["broken", "reason"] == "no vibenet"  # it could not read it: listed, kept
    assert np.isnan(df.at["broken", "energy"])
    # Our process never imported the GPL code.
    import sys

    assert "vibenet" not in sys.modules
