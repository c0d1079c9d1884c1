"""A crafted checkpoint whose pickle would run code is refused by every path that opens
checkpoints: inference, predict_clip, and resuming training (``--ckpt_path``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_module.inference.tagger import CheckpointError, Tagger, load_checkpoint
from scripts import predict_clip
from tests.conftest import run_training


class Payload:
    """Unpickling this calls ``exec``: it writes ``marker``, proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def malicious_checkpoint(path: Path, marker: Path, template: Path | None = None) -> Path:
    """A checkpoint that looks normal (a real one's keys) with a code-running object inside."""
    checkpoint = (
        torch.load(template, weights_only=True)
        if template
        else {"state_dict": {}, "hyper_parameters": {}}
    )
    checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "note": Payload(marker)}
    torch.save(checkpoint, path)
    return path


def test_the_crafted_checkpoint_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(evil, weights_only=False)  # what an unsafe loader would do
    assert marker.read_text() == "pwned"


def test_inference_refuses_it(tmp_path: Path, trained_checkpoint: Path) -> None:
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker, template=trained_checkpoint)
    for load in (load_checkpoint, Tagger.from_checkpoint):
        with pytest.raises(CheckpointError, match="refused to load") as err:
            load(evil)
        assert str(evil) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_predict_clip_refuses_it_in_one_line(
    tmp_path: Path, trained_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    from tests.conftest import write_tone

    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker, template=trained_checkpoint)
    song = write_tone(tmp_path / "song.wav")
    assert predict_clip.main([str(song), "--checkpoint", str(evil)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {evil}: refused to load")
    assert not marker.exists()


def test_resuming_training_from_it_is_refused(
    tmp_path: Path, trained_checkpoint: Path, synthetic_manifest: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.ckpt", marker, template=trained_checkpoint)
    with pytest.raises(CheckpointError, match="refused to resume") as err:
        run_training(
            tmp_path / "run",
            synthetic_manifest,
            f"--ckpt_path={evil}",
            "--trainer.max_epochs=3",
            "--test_after_fit=false",
        )
    assert str(evil) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
