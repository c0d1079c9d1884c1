"""Mixed precision, channels_last and torch.compile: faster, and the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from datamodules.loading.datamodule import MusicDataModule
from lightning_module.inference.tagger import Tagger
from lightning_module.model.settings import LogMelSettings
from lightning_module.training.cli import DEFAULT_CONFIG, TaggerCLI
from lightning_module.training.module import MusicTagger

TINY = {"width": 8, "embed_dim": 16, "logmel": LogMelSettings(n_mels=32)}


def _model(**kwargs) -> MusicTagger:
    return MusicTagger(genre_names=["a", "b", "c"], mood_names=["happy", "sad"], **TINY, **kwargs)


def test_bf16_mixed_training_keeps_the_frontend_in_float32(
    synthetic_manifest: Path, tmp_path: Path
) -> None:
    dm = MusicDataModule(
        str(synthetic_manifest),
        data_dir=str(tmp_path),
        num_workers=0,
        batch_size=4,
        crop_seconds=1.0,
        augment=False,
    )
    model = MusicTagger(
        **{k: getattr(dm, k) for k in ("genre_names", "mood_names", "feature_names")},
        feature_mean=dm.feature_mean,
        feature_std=dm.feature_std,
        crop_seconds=1.0,
        channels_last=True,
        **TINY,
    )
    seen: dict[str, set[torch.dtype]] = {"frontend": set(), "stem": set()}
    model.net.frontend.register_forward_hook(lambda m, i, o: seen["frontend"].add(o.dtype))
    model.net.backbone.stem[0].register_forward_hook(lambda m, i, o: seen["stem"].add(o.dtype))
    before = model.net.backbone.stem[0].weight.detach().clone()
    trainer = pl.Trainer(
        accelerator="cpu",
        precision="bf16-mixed",
        fast_dev_run=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 2
    assert seen["frontend"] == {torch.float32}  # mel power would overflow in half precision
    assert seen["stem"] == {torch.bfloat16}  # the convolutions did run in bf16
    weight = model.net.backbone.stem[0].weight
    assert weight.dtype == torch.float32 and torch.isfinite(weight).all()
    assert not torch.equal(weight, before)  # it trained
    assert weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_changes_no_value_and_no_checkpoint_key() -> None:
    torch.manual_seed(0)
    plain = _model().eval()
    fast = _model(channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.state_dict().keys() == plain.state_dict().keys()
    conv = fast.net.backbone.stages[0][0].body[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()
    wave = torch.randn(2, 16000)
    with torch.inference_mode():
        a, b = plain(wave), fast(wave)
    for key in ("genre", "mood", "embedding"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_compile_flag_is_saved_and_leaves_checkpoints_plain(tmp_path: Path) -> None:
    model = _model(compile=True, channels_last=True)
    assert model.hparams.compile is True and model.hparams.channels_last is True
    assert model.state_dict().keys() == _model().state_dict().keys()  # no "_orig_mod" keys
    # The inference path rebuilds the plain network from the saved hyperparameters.
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save(checkpoint, tmp_path / "m.ckpt")
    tagger = Tagger.from_checkpoint(tmp_path / "m.ckpt")
    assert tagger.net.channels_last and len(tagger.predict_waveform(torch.randn(16000)).genre) == 3


def test_speed_flags_are_in_the_cli(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        TaggerCLI(
            MusicTagger,
            MusicDataModule,
            run=False,
            auto_configure_optimizers=False,
            args=[
                "--model.channels_last=true",
                "--model.compile=true",
                "--trainer.precision=bf16-mixed",
                "--data.pin_memory=true",
                "--data.prefetch_factor=2",
                "--print_config",
            ],
            parser_kwargs={"default_config_files": [str(DEFAULT_CONFIG)]},
        )
    assert exit_.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["channels_last"] is True and config["model"]["compile"] is True
    assert config["trainer"]["precision"] == "bf16-mixed"
    assert config["data"]["pin_memory"] is True and config["data"]["prefetch_factor"] == 2


@pytest.mark.slow
def test_compiled_network_gives_the_eager_outputs() -> None:
    """Real inductor compilation on CPU; one residual stage keeps the graph, and so the compile
    time, small (~1 min on 2 busy cores)."""
    torch.manual_seed(0)
    model = _model(compile=True, blocks=[1]).eval()
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        compiled, eager = model(wave), model.net(wave)
    for key in ("genre", "mood", "embedding"):
        torch.testing.assert_close(compiled[key], eager[key], atol=1e-4, rtol=1e-4)
