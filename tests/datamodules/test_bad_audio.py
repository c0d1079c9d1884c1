"""Every kind of bad audio either works or fails with one line naming the file and the reason,
through each path that reads audio: load_audio, predict_clip and the manifest → cache → training."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamodules.audio import AudioError, load_audio
from datamodules.manifest import read_manifest, write_manifest
from lightning_module.inference.tagger import MIN_SECONDS
from scripts import predict_clip
from tests.bad_audio import KINDS, BadAudio, make_bad_audio
from tests.conftest import run_training

PREDICT_ERRORS = {"directory_named_wav": r"no audio files"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadAudio]:
    return {b.kind: b for b in make_bad_audio(tmp_path_factory.mktemp("bad audio") / "corpus")}


def test_corpus_has_at_least_twelve_kinds_of_bad_input(corpus: dict[str, BadAudio]) -> None:
    assert len(corpus) >= 12
    assert sum(b.error is not None for b in corpus.values()) >= 10


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_audio_works_or_names_file_and_reason(corpus: dict[str, BadAudio], kind: str) -> None:
    bad = corpus[kind]
    if bad.error is None:
        wave = load_audio(bad.path, 16000, min_duration=0.1, allow_silence=False)
        assert wave.ndim == 1 and np.isfinite(wave).all() and np.abs(wave).max() <= 1.0
        assert wave.size / 16000 >= bad.min_seconds
        assert np.abs(wave).max() > 0.05  # the tone survived bit depth, rate and channel changes
    else:
        with pytest.raises(AudioError, match=bad.error) as err:
            load_audio(bad.path, 16000, min_duration=0.1, allow_silence=False)
        message = str(err.value)
        assert "\n" not in message and message.startswith(str(bad.path))


def test_predict_clip_tags_good_inputs_and_gives_one_line_for_bad_ones(
    corpus: dict[str, BadAudio], trained_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    for bad in corpus.values():
        seconds = 0.0 if bad.error else load_audio(bad.path, 16000).size / 16000
        code = predict_clip.main([str(bad.path), "--checkpoint", str(trained_checkpoint)])
        out, err = capsys.readouterr()
        if seconds >= MIN_SECONDS:
            assert code == 0, f"{bad.kind}: {err}"
            assert out.startswith(str(bad.path)) and "genre:" in out and "nan" not in out
        else:
            # predict_clip also takes folders: a directory named x.wav is searched for audio
            expected = PREDICT_ERRORS.get(bad.kind, bad.error or "too short")
            assert code == 2, f"{bad.kind} was accepted: {out}"
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {bad.path}"), bad.kind
            assert pd.Series(lines).str.contains(expected).all(), f"{bad.kind}: {lines[0]}"


def test_bad_rows_are_listed_before_training_and_the_run_survives(
    corpus: dict[str, BadAudio],
    synthetic_manifest: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = read_manifest(synthetic_manifest)
    bad_rows = pd.DataFrame(
        {
            "track_id": [f"bad_{kind}" for kind in corpus],
            "audio_path": [str(b.path) for b in corpus.values()],
            # most in train, every third in val, so both loaders meet them
            "split": ["val" if i % 3 == 2 else "train" for i in range(len(corpus))],
            "genre": good["genre"].iloc[0],
            "mood": good["mood"].iloc[0],
        }
    )
    manifest = write_manifest(
        pd.concat([good, bad_rows], ignore_index=True), tmp_path / "run – é" / "manifest.csv"
    )
    caplog.set_level(logging.INFO)
    cli = run_training(
        tmp_path / "run – é",
        manifest,
        "--trainer.max_epochs=1",
        "--test_after_fit=false",
        "--data.crops_per_clip=1",
    )

    refused = {b.kind for b in corpus.values() if b.error is not None}
    skipped = cli.datamodule.cache.skipped
    assert set(skipped["track_id"]) == {f"bad_{k}" for k in refused}
    for row in skipped.itertuples():
        assert "\n" not in row.reason and row.reason.startswith(row.audio_path)
    messages = [r.getMessage() for r in caplog.records]
    listed = [i for i, m in enumerate(messages) if "unreadable clip(s) before training" in m]
    # Lightning's first message of the fit loop proper (configure_optimizers asks it for the
    # number of steps): the listing must come before it
    started = [i for i, m in enumerate(messages) if "Loading `train_dataloader`" in m]
    assert listed and started and listed[0] < started[0], "bad rows not listed before training"
    listing = messages[listed[0]]
    assert f"excluded {len(refused)} unreadable clip(s) before training" in listing
    assert all(str(corpus[k].path) in listing for k in refused)

    used = set(cli.datamodule.usable["track_id"])
    assert {f"bad_{k}" for k in corpus if k not in refused} <= used
    assert len(used) == len(good) + len(corpus) - len(refused)  # nothing good was lost
    # the hour-long file is capped in the cache, not decoded whole
    cap = cli.datamodule.hparams.max_clip_seconds * cli.datamodule.hparams.sample_rate
    assert cli.datamodule.cache.length("bad_one_hour") == cap
    assert cli.trainer.global_step > 0
    for name in ("train/loss_epoch", "val/loss"):
        assert math.isfinite(float(cli.trainer.callback_metrics[name])), name
