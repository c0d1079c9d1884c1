"""Fine-tuning from a checkpoint (``--model.init_from``, ``configs/finetune.yaml``): the source
dictates the architecture, the backbone and matching heads are copied, other heads start fresh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.loading.datamodule import MusicDataModule
from datamodules.manifest import read_manifest
from datamodules.schema import TASK_FIELDS
from lightning_module.inference import shipped
from lightning_module.inference.checkpoint import CheckpointError, load_network
from lightning_module.model.settings import LogMelSettings
from lightning_module.training.cli import DEFAULT_CONFIG, TaggerCLI, main
from lightning_module.training.module import MusicTagger
from lightning_module.training.warm_start import copy_weights, load_source
from tests.conftest import REPO_ROOT

FINETUNE = REPO_ROOT / "configs" / "finetune.yaml"

#: The source's architecture: unlike configs/train.yaml's in every field, so a run that did not
#: take it from the source would not load the weights.
SOURCE_ARCH = {
    "width": 8,
    "blocks": [1, 1],
    "embed_dim": 32,
    "logmel": LogMelSettings(n_mels=48, hop_length=320).to_dict(),
    "tempo_bins": 16,
    "crop_seconds": 2.0,
}


def _task(manifest: Path) -> dict:
    data = MusicDataModule(manifest=str(manifest), num_workers=0)
    return {name: getattr(data, name) for name in TASK_FIELDS}


def _save_slim(model: MusicTagger, path: Path) -> Path:
    """The shipped format: ``state_dict`` and the spec's ``hyper_parameters`` only."""
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": model.spec.to_hparams()}, path
    )
    return path


@pytest.fixture(scope="module")
def source(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny slim checkpoint for the synthetic labels, its weights drawn away from a fresh
    initialisation (so "copied" and "fresh" cannot agree by chance)."""
    torch.manual_seed(0)
    model = MusicTagger(**_task(synthetic_manifest), **SOURCE_ARCH)
    with torch.no_grad():
        for tensor in model.net.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    return _save_slim(model, tmp_path_factory.mktemp("source") / "source.ckpt")


@pytest.fixture(scope="module")
def own_genres(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same clips with the user's own genre names (as many) and energy values on another
    scale (other train statistics); the moods as the source's."""
    df = read_manifest(synthetic_manifest, check_audio=False)  # audio paths made absolute
    df["genre"] = "my_" + df["genre"]
    df["energy"] = 0.5 * df["energy"] + 0.2
    path = tmp_path_factory.mktemp("own") / "manifest.csv"
    df.to_csv(path, index=False)
    return path


def _cli(manifest: Path, init_from: Path, *extra: str) -> TaggerCLI:
    """The real fine-tuning config, instantiated (step 0), forced tiny and on CPU."""
    return TaggerCLI(
        MusicTagger,
        MusicDataModule,
        run=False,
        auto_configure_optimizers=False,
        args=[
            "--config",
            str(FINETUNE),
            f"--model.init_from={init_from}",
            f"--data.manifest={manifest}",
            "--data.num_workers=0",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            *extra,
        ],
        parser_kwargs={"default_config_files": [str(DEFAULT_CONFIG)]},
    )


def _weights(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_genres_keep_the_backbone_and_mood_and_start_a_fresh_genre_head(
    source: Path, own_genres: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = _cli(own_genres, source)
    src = torch.load(source, weights_only=True)["state_dict"]
    own = cli.model.state_dict()
    # The architecture, window and sample rate came from the source, into the data module too.
    hp = cli.model.hparams
    assert {k: hp[k] for k in SOURCE_ARCH} == SOURCE_ARCH
    assert cli.datamodule.hparams.crop_seconds == 2.0
    for part in ("net.frontend.", "net.backbone.", "net.tempo."):
        assert _equal(_weights(own, part), _weights(src, part)), part
    assert _equal(_weights(own, "net.heads.heads.mood."), _weights(src, "net.heads.heads.mood."))
    genre = "net.heads.heads.genre.weight"
    assert own[genre].shape == src[genre].shape and not torch.equal(own[genre], src[genre])
    assert hp.genre_names[0].startswith("my_")

    # The feature head, re-expressed in the user's statistics, predicts the same natural units.
    spec = load_source(source).spec
    mine = cli.model.spec
    assert mine.feature_mean != spec.feature_mean  # energy moved
    embedding = torch.randn(5, 32)

    def natural(state: dict, s) -> torch.Tensor:
        z = embedding @ state["net.heads.heads.features.weight"].T
        z = z + state["net.heads.heads.features.bias"]
        return z * torch.tensor(s.feature_std) + torch.tensor(s.feature_mean)

    torch.testing.assert_close(natural(own, mine), natural(src, spec), rtol=1e-4, atol=1e-4)
    # What the copied weights learned from stays on record: both runs' rows.
    assert hp.train_sources == {"synthetic": 2 * spec.train_sources["synthetic"]}


def test_same_labels_copy_every_head(
    source: Path, synthetic_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = _cli(synthetic_manifest, source).model
    src = load_source(source)
    report = copy_weights(src, model.net, model.spec, say=lambda line: None)
    assert report == dict.fromkeys(
        ("frontend", "backbone", "tempo", "genre", "mood", "features"), "kept"
    )
    own = model.state_dict()
    for name, value in src.state.items():
        torch.testing.assert_close(own[f"net.{name}"], value, msg=name)


def test_a_short_fine_tune_writes_a_checkpoint_that_stands_alone(
    source: Path, own_genres: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main(
        [
            "--config",
            str(FINETUNE),
            f"--model.init_from={source}",
            f"--data.manifest={own_genres}",
            "--data.num_workers=0",
            "--data.batch_size=8",
            "--data.crops_per_clip=1",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            "--test_after_fit=false",
        ]
    )
    last = tmp_path / "checkpoints" / "finetune" / "last.ckpt"
    hp = torch.load(last, weights_only=True)["hyper_parameters"]
    assert hp["init_from"] == str(source) and hp["width"] == 8
    source.rename(source.with_suffix(".moved"))  # the fine-tuned model needs no source
    try:
        _, spec = load_network(last)
    finally:
        source.with_suffix(".moved").rename(source)
    assert spec.genre_names[0].startswith("my_") and spec.tempo_bins == 16


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_missing_or_unreadable_source_is_one_line(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    task = _task(synthetic_manifest)
    missing = tmp_path / "nowhere.ckpt"
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, init_from=str(missing))
    assert str(missing) in _one_line(err) and "not found" in str(err.value)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, init_from=str(garbage))
    assert str(garbage) in _one_line(err)


def test_an_incompatible_source_is_one_line(
    source: Path, synthetic_manifest: Path, tmp_path: Path
) -> None:
    task = _task(synthetic_manifest)
    # Weights of another width than the architecture its hyperparameters describe.
    wider = MusicTagger(**task, **{**SOURCE_ARCH, "width": 12})
    broken = torch.load(source, weights_only=True)
    broken["state_dict"] = wider.state_dict()
    torch.save(broken, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, crop_seconds=2.0, init_from=str(tmp_path / "broken.ckpt"))
    assert "backbone does not fit" in _one_line(err)
    # Data settings come from the data module: a model built with others is told which.
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, crop_seconds=2.0, sample_rate=22050, init_from=str(source))
    assert "sample_rate" in _one_line(err)
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, crop_seconds=2.0, init_from=str(source), pretrained="x.pt")
    assert "choose one" in _one_line(err)


def test_shipped_means_the_shipped_checkpoint(
    source: Path, synthetic_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "shipped_dir", lambda: tmp_path)
    task = _task(synthetic_manifest)
    with pytest.raises(CheckpointError) as err:
        MusicTagger(**task, crop_seconds=2.0, init_from="shipped")
    assert "make refit" in _one_line(err)
    (tmp_path / shipped.CHECKPOINT_NAME).write_bytes(source.read_bytes())
    model = MusicTagger(**task, crop_seconds=2.0, init_from="shipped")
    assert model.hparams.width == SOURCE_ARCH["width"]


def test_train_script_reports_a_missing_source_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ckpt"
    script = str(REPO_ROOT / "scripts" / "train.py")
    args = [sys.executable, script, "--config", str(FINETUNE), f"--model.init_from={missing}"]
    done = subprocess.run(
        args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr  # (Lightning's "Seed set to 0" comes first)
    assert done.stderr.strip().splitlines()[-1] == f"error: {missing}: checkpoint not found"


def test_the_finetune_config_parses_forced_tiny_on_cpu(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        TaggerCLI(
            MusicTagger,
            MusicDataModule,
            run=False,
            auto_configure_optimizers=False,
            args=[
                "--config",
                str(FINETUNE),
                "--trainer.accelerator=cpu",
                "--trainer.max_epochs=1",
                "--data.num_workers=0",
                "--print_config",
            ],
            parser_kwargs={"default_config_files": [str(DEFAULT_CONFIG)]},
        )
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_from"] == "shipped"
    assert printed["model"]["lr"] < 0.003  # below the from-scratch recipe's
    assert printed["checkpoint"]["dirpath"] == "checkpoints/finetune"
    assert printed["trainer"]["logger"]["init_args"]["name"] == "finetune"
    assert printed["data"]["manifest"] is None  # the user's, on the command line


def test_a_short_fine_tune_from_the_real_shipped_model(
    own_genres: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configs/finetune.yaml as shipped (init_from: shipped) on a tiny manifest of the user's own
    genres: the shipped checkpoint's backbone is kept, its architecture imposed."""
    try:
        shipped_ckpt = shipped.shipped_checkpoint()
    except shipped.ShippedModelError:
        pytest.skip("no shipped model in this checkout")
    monkeypatch.chdir(tmp_path)
    main(
        [
            "--config",
            str(FINETUNE),
            f"--data.manifest={own_genres}",
            "--data.num_workers=0",
            "--data.batch_size=8",
            "--data.crops_per_clip=1",
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            "--test_after_fit=false",
        ]
    )
    last = tmp_path / "checkpoints" / "finetune" / "last.ckpt"
    _, spec = load_network(last)
    source = torch.load(shipped_ckpt, weights_only=True)
    assert spec.genre_names[0].startswith("my_")
    assert spec.crop_seconds == source["hyper_parameters"]["crop_seconds"] == 6.0
    assert spec.width == source["hyper_parameters"]["width"]
