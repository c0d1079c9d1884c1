"""The branch refit on generated clips of known key and tempo, through the real script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lightning_module.inference.checkpoint import load_network
from lightning_module.inference.shipped import shipped_checkpoint
from lightning_module.inference.tagger import Tagger
from lightning_module.model.spec import FORMAT_VERSION
from scripts.fit_branches import main
from tests.tonal_audio import cadence

RATE = 16000
#: (tonic, mode, BPM, split) of the generated clips.
CLIPS = [
    ("C", "major", 100.0, "train"),
    ("A", "minor", 120.0, "train"),
    ("F", "major", 90.0, "train"),
    ("E", "minor", 140.0, "train"),
    ("G", "major", 110.0, "val"),
    ("D", "minor", 130.0, "test"),
]


def _clip(tonic: str, mode: str, bpm: float) -> np.ndarray:
    """A cadence with a click on every beat (8 s)."""
    wave = cadence(tonic, mode, RATE, seconds=8.0)
    period = int(round(60.0 / bpm * RATE))
    clicks = np.zeros_like(wave)
    for start in range(0, wave.size - 200, period):
        clicks[start : start + 200] = np.hanning(200) * 0.6
    return np.clip(wave * 0.6 + clicks, -1, 1).astype(np.float32)


@pytest.fixture
def labelled_manifest(tmp_path: Path) -> Path:
    rows = []
    for i, (tonic, mode, bpm, split) in enumerate(CLIPS):
        path = tmp_path / f"clip{i}.flac"
        sf.write(path, _clip(tonic, mode, bpm), RATE)
        rows.append(
            {
                "track_id": f"gen:{i}",
                "audio_path": path.name,
                "split": split,
                "source": "generated",
                "tempo": bpm,
                "provenance_tempo": "human",
                "key": tonic,
                "mode": mode,
            }
        )
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.mark.slow
def test_fit_branches_adds_a_key_head_chosen_on_val(
    labelled_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out" / "tagger.ckpt"
    args = [str(shipped_checkpoint()), "--manifest", str(labelled_manifest), "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "key candidate" in printed and "(chosen)" in printed
    report = json.loads(out.with_suffix(".branches.json").read_text())
    assert report["clips"]["train"] == {"tempo": 4, "key": 4}
    assert set(report["key"]["candidates"]) == {
        "dsp",
        "profiles",
        "hidden16",
        "hidden16, 100 epochs",
    }
    assert report["key"]["candidates"]["dsp"]["cv"]["n"] == 5  # train + val clips, held out
    assert report["key"]["candidates"]["dsp"]["test"]["n"] == 1
    net, spec = load_network(out)
    assert len(spec.key_names) == 24 and spec.format_version == FORMAT_VERSION
    before, _ = load_network(shipped_checkpoint())
    # The backbone and the heads on the embedding are untouched.
    for name, value in before.backbone.state_dict().items():
        assert np.array_equal(value.numpy(), net.backbone.state_dict()[name].numpy())
    prediction = Tagger(net, spec).predict_waveform(_clip("D", "minor", 130.0))
    assert (prediction.decoded["key"], prediction.decoded["mode"]) == ("D", "minor")
    assert (out.parent / "tagger.ckpt.work" / "manifest.csv").exists()


def test_a_bad_key_is_one_line_naming_the_track(labelled_manifest: Path, tmp_path: Path, capsys):
    df = pd.read_csv(labelled_manifest)
    df.loc[2, "key"] = "H"
    df.to_csv(labelled_manifest, index=False)
    out = tmp_path / "bad.ckpt"
    code = main(
        [str(shipped_checkpoint()), "--manifest", str(labelled_manifest), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "gen:2" in err and "not a musical key" in err and not out.exists()


def test_cached_inputs_are_reused_only_for_the_same_clips_audio_and_settings(
    labelled_manifest: Path, tmp_path: Path
) -> None:
    import dataclasses
    import os

    from lightning_module.training.branch_data import (
        TRAIN_SHIFTS,
        BranchInputs,
        inputs_key,
        labelled_clips,
        load_inputs,
        merge_manifests,
        save_inputs,
    )

    net, spec = load_network(shipped_checkpoint())
    clips = labelled_clips(merge_manifests([labelled_manifest]))
    key = inputs_key(net, spec, clips, TRAIN_SHIFTS)
    assert key == inputs_key(net, spec, clips, TRAIN_SHIFTS)
    relabelled = [dataclasses.replace(clips[0], tempo=61.0), *clips[1:]]
    other_front_end = dataclasses.replace(spec, logmel=dataclasses.replace(spec.logmel, n_mels=32))
    changed = {
        "a label": inputs_key(net, spec, relabelled, TRAIN_SHIFTS),
        "the speed changes": inputs_key(net, spec, clips, (0,)),
        "the front-end": inputs_key(net, other_front_end, clips, TRAIN_SHIFTS),
    }
    os.utime(clips[1].path, ns=(0, 0))  # the audio file replaced: another modification time
    changed["an audio file"] = inputs_key(net, spec, clips, TRAIN_SHIFTS)
    assert all(value != key for value in changed.values()), changed

    inputs = BranchInputs(
        chroma=np.zeros((2, 2, 12), np.float32),
        acf=np.zeros((2, 4, 8), np.float32),
        clip=np.array([0, 1]),
        tempo=np.array([100.0, np.nan]),
        key=np.array([3, -1]),
        shift=np.array([0, 0]),
        clips=clips[:2],
        cache_key=key,
    )
    path = tmp_path / "branch_inputs.npz"
    save_inputs(inputs, path)
    loaded = load_inputs(path)
    assert loaded is not None and loaded.cache_key == key and loaded.clips == clips[:2]
    np.testing.assert_array_equal(loaded.key, inputs.key)
    path.write_bytes(path.read_bytes()[:100])  # a torn file reads as absent: computed again
    assert load_inputs(path) is None
    assert load_inputs(tmp_path / "missing.npz") is None
