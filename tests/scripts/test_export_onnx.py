"""scripts/export_onnx.py: the exported model (frontend included) matches PyTorch in onnxruntime,
and predict_clip --onnx runs it through the same windowing and aggregation code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from datamodules.synthetic import render_clip
from lightning_module.inference.export import TOLERANCE
from lightning_module.inference.runners import ONNX_HPARAMS_KEY, OnnxRunner, TorchRunner
from lightning_module.inference.tagger import Tagger, load_network
from scripts.export_onnx import main as export_main
from scripts.predict_clip import main as predict_main
from tests.conftest import write_tone

#: Largest accepted |difference| of probabilities and natural-unit features between the two
#: runtimes, on top of ``TOLERANCE`` (1e-3) on logits / standardised outputs.
PROB_TOL = 1e-4


@pytest.fixture(scope="module")
def exported(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert export_main(["--checkpoint", str(trained_checkpoint), "--out", str(out)]) == 0
    return out


def test_export_writes_a_valid_model_with_dynamic_axes_and_metadata(
    exported: Path, trained_checkpoint: Path, capsys
) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    (wave,) = model.graph.input
    dims = wave.type.tensor_type.shape.dim
    assert len(dims) == 2 and all(d.dim_param and not d.dim_value for d in dims)  # both dynamic
    outputs = [o.name for o in model.graph.output]
    assert outputs == ["genre", "mood", "features", "embedding"]  # no tag head in this model
    meta = {p.key: p.value for p in model.metadata_props}
    _, spec = load_network(trained_checkpoint)
    assert json.loads(meta[ONNX_HPARAMS_KEY])["genre_names"] == list(spec.genre_names)
    # the frontend is inside: the graph computes the STFT itself
    assert any(node.op_type == "STFT" for node in model.graph.node)


@pytest.mark.parametrize(("batch", "seconds"), [(1, 2.0), (5, 2.0), (2, 7.3), (1, 1.0)])
def test_onnxruntime_matches_pytorch(
    exported: Path, trained_checkpoint: Path, batch: int, seconds: float
) -> None:
    net, spec = load_network(trained_checkpoint)
    rng = np.random.default_rng(batch)
    genres = ["rock", "jazz", "classical", "hiphop", "folk"]
    wave = torch.stack(
        [
            torch.from_numpy(render_clip(genres[i], "happy", seconds, 16000, rng)[0])
            for i in range(batch)
        ]
    ).float()
    expected = TorchRunner(net)(wave)
    got = OnnxRunner(exported)(wave)
    assert set(got) == set(expected)
    for name in got:
        assert got[name].shape == expected[name].shape
        diff = float(np.abs(got[name] - expected[name]).max())
        assert diff <= TOLERANCE, f"{name}: max |onnx - torch| = {diff:.2e}"


def test_predict_clip_onnx_matches_checkpoint(
    exported: Path, trained_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    rng = np.random.default_rng(9)
    samples, _ = render_clip("electronic", "energetic", 9.0, 44100, rng)
    song = tmp_path / "song.flac"
    sf.write(song, samples, 44100)
    results = []
    for model in (["--onnx", str(exported)], ["--checkpoint", str(trained_checkpoint)]):
        assert predict_main([str(song), *model, "--json", "--top", "6"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    onnx_out, torch_out = results
    assert onnx_out["windows"] == torch_out["windows"] == 8
    for task in ("genre", "mood"):
        a = {g["label"]: g["probability"] for g in onnx_out[task]}
        b = {g["label"]: g["probability"] for g in torch_out[task]}
        assert a.keys() == b.keys()
        assert max(abs(a[k] - b[k]) for k in a) <= PROB_TOL + 1e-4  # JSON rounds to 4 digits
    for name, value in torch_out["features"].items():
        assert onnx_out["features"][name] == pytest.approx(value, rel=1e-3, abs=1e-3)


def test_onnx_tagger_runs_folder_and_timeline(exported: Path, tmp_path: Path) -> None:
    tagger = Tagger.from_file(exported, batch_size=3)
    assert tagger.net is None  # onnxruntime does the arithmetic, not torch
    for i in range(3):
        write_tone(tmp_path / f"tone{i}.wav", seconds=2.5 + i)
    results = list(tagger.predict_files(sorted(tmp_path.glob("*.wav"))))
    assert [r.windows for r in results] == [2, 3, 4]
    assert len(tagger.timeline(tmp_path / "tone2.wav")) == 4


def test_bad_onnx_file_is_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    song = write_tone(tmp_path / "tone.wav", seconds=2.0)
    for model in (bad, tmp_path / "missing.onnx"):
        assert predict_main([str(song), "--onnx", str(model)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {model}: ") and "\n" not in err


def test_export_of_a_missing_checkpoint_is_one_line_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.ckpt"
    assert export_main(["--checkpoint", str(missing), "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: checkpoint not found"
    assert not (tmp_path / "m.onnx").exists()


@pytest.fixture(scope="module")
def tempo_checkpoint(synthetic_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with a tempo head: the head whose export froze the input length."""
    from tests.conftest import run_training

    workdir = tmp_path_factory.mktemp("tempo_run")
    run_training(
        workdir,
        synthetic_manifest,
        "--model.tempo_bins=96",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--test_after_fit=false",
    )
    return sorted((workdir / "checkpoints").glob("*.ckpt"))[-1]


def test_a_model_with_a_tempo_head_exports_with_a_dynamic_length(
    tempo_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "tempo.onnx"
    assert export_main(["--checkpoint", str(tempo_checkpoint), "--out", str(out)]) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param and not d.dim_value for d in dims)
    net, spec = load_network(tempo_checkpoint)
    runner = OnnxRunner(out)
    for seconds in (1.3, 2.0, 7.5):  # shorter, equal and longer than the 2 s training window
        wave = torch.from_numpy(
            render_clip("rock", "happy", seconds, 16000, np.random.default_rng(1))[0]
        )[None].float()
        got, expected = runner(wave), TorchRunner(net)(wave)
        assert float(np.abs(got["tempo"] - expected["tempo"]).max()) <= TOLERANCE


def test_a_failed_check_leaves_no_file_and_says_so_in_one_line(
    trained_checkpoint: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import lightning_module.inference.export as export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # nothing can pass: the check must refuse
    out = tmp_path / "model.onnx"
    assert export_main(["--checkpoint", str(trained_checkpoint), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "model.onnx" in err and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
