"""What a model was trained on travels in its checkpoint, and predict_clip prints nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.manifest import read_manifest, write_manifest
from lightning_module.inference.checkpoint import load_checkpoint
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tempo import TempoBins
from scripts.predict_clip import main as predict_main
from tests.conftest import run_training


@pytest.fixture(scope="module")
def partial_run(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """A short fit on a manifest whose liveness is missing everywhere and tempo on half the
    rows (as a teacher that skipped some clips would leave it), with a tempo head."""
    root = tmp_path_factory.mktemp("partial")
    df = read_manifest(synthetic_manifest, check_audio=False)
    df["liveness"] = np.nan
    df.loc[df.index[::2], "tempo"] = np.nan
    df["provenance_tempo"] = df["tempo"].notna().map({True: "teacher:librosa-tempo", False: None})
    df["source"] = "mine"  # not the synthetic set: real audio as far as the model can tell
    manifest = write_manifest(df, root / "data" / "manifest.csv")
    cli = run_training(
        root,
        manifest,
        "--trainer.max_epochs=2",
        "--test_after_fit=false",
        "--model.tempo_bins=32",
        "--model.tempo_min=40",
        "--model.tempo_max=240",
    )
    return root, df, cli


def test_missing_feature_values_are_masked_and_counted(partial_run) -> None:
    root, df, cli = partial_run
    assert torch.isfinite(cli.trainer.callback_metrics["val/tempo_loss"])
    spec = TaggerSpec.from_hparams(
        load_checkpoint(root / "checkpoints" / "last.ckpt")["hyper_parameters"]
    )
    sources = dict(zip(spec.feature_names, spec.feature_sources, strict=True))
    train = df[df["split"] == "train"]
    assert sources["liveness"] == {}
    assert sources["tempo"] == {"teacher:librosa-tempo": int(train["tempo"].notna().sum())}
    assert sources["energy"] == {"table": len(train)}
    assert spec.train_sources == {"mine": len(train)} and not spec.synthetic_only
    assert "liveness" not in spec.trained_features and spec.tempo_bins == 32
    assert "val/tempo_acc1" in cli.trainer.callback_metrics


def test_predict_clip_omits_untrained_features_and_says_why(partial_run, capsys) -> None:
    root, df, _ = partial_run
    clip = df["audio_path"].iloc[0]
    assert (
        predict_main([clip, "--checkpoint", str(root / "checkpoints" / "last.ckpt"), "--json"]) == 0
    )
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert set(data) >= {"genre", "mood", "features", "feature_basis", "tags", "path"}
    assert "liveness" not in data["features"] and "liveness" not in data["feature_basis"]
    assert set(data["features"]) == set(data["feature_basis"])
    assert 40 <= data["features"]["tempo"] <= 240  # decoded from the tempo head's bins
    assert "teacher:librosa-tempo" in data["feature_basis"]["tempo"]
    assert captured.err.count("not trained on liveness") == 1


def test_the_synthetic_demo_model_says_so_once(
    trained_checkpoint: Path, synthetic_manifest, capsys
) -> None:
    folder = Path(read_manifest(synthetic_manifest, check_audio=False)["audio_path"].iloc[0]).parent
    assert predict_main([str(folder), "--checkpoint", str(trained_checkpoint)]) == 0
    err = capsys.readouterr().err
    assert err.count("trained only on the synthetic demo set") == 1 and "make train-real" in err


def test_tempo_bins_round_trip() -> None:
    bins = TempoBins(96, 30.0, 300.0)
    bpm = torch.tensor([60.0, 120.0, 174.0])
    assert np.allclose(bins.decode(bins.soft_targets(bpm).numpy()), bpm.numpy(), rtol=0.01)
