"""`pip install .` alone: the runtime without PyTorch tags audio with an ONNX model.

A clean virtual environment gets the package with no extras (numpy, soundfile, PyAV, soxr,
onnxruntime, tqdm), then the `library` extra. Torch must not be importable there, and
`audiotagger tag` must tag a generated mp3 (with an exported model), and a real clip with the
shipped model when both exist; `audiotagger write-tags` runs its dry run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from datamodules.synthetic import render_clip
from lightning_module.inference.shipped import ShippedModelError, shipped_onnx
from tests.conftest import REPO_ROOT, SHARED_DATA

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=900, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install .` (no extras): its bin folder."""
    root = tmp_path_factory.mktemp("runtime")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    # a copy of the tracked tree, so the build sees what a clone has (no .venv, no data/)
    source = root / "source"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO_ROOT / name).read_bytes())
    shipped = REPO_ROOT / "lightning_module" / "shipped"
    for extra in shipped.glob("*"):  # the model files, tracked or just built
        if extra.is_file():
            (source / "lightning_module" / "shipped" / extra.name).write_bytes(extra.read_bytes())
    result = _run(bin_dir / "python", "-m", "pip", "install", "-q", str(source))
    assert result.returncode == 0, result.stderr[-3000:]
    return bin_dir


@pytest.fixture(scope="module")
def exported(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scripts.export_onnx import main as export_main

    out = tmp_path_factory.mktemp("runtime_model") / "tiny.onnx"
    assert export_main(["--checkpoint", str(trained_checkpoint), "--out", str(out)]) == 0
    return out


def test_torch_is_not_installed(runtime: Path) -> None:
    result = _run(runtime / "python", "-c", "import torch")
    assert result.returncode != 0 and "No module named 'torch'" in result.stderr


def test_tag_a_generated_mp3_without_torch(runtime: Path, exported: Path, tmp_path: Path) -> None:
    samples, _ = render_clip("rock", "energetic", 8.0, 44100, np.random.default_rng(0))
    song = tmp_path / "song.mp3"
    sf.write(song, np.stack([samples, samples], 1), 44100)
    result = _run(runtime / "audiotagger", "tag", song, "--onnx", exported, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["genre"] and out["windows"] >= 2
    # the same in-process, proving no module of torch's was even imported
    probe = (
        "import sys; from lightning_module.commands.tag import main; "
        f"code = main([{str(song)!r}, '--onnx', {str(exported)!r}, '--json']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchaudio')]; "
        "assert code == 0 and not bad, bad"
    )
    result = _run(runtime / "python", "-c", probe)
    assert result.returncode == 0, result.stderr


def test_the_shipped_model_tags_a_real_clip(runtime: Path) -> None:
    try:
        shipped_onnx()
    except ShippedModelError:
        pytest.skip("no shipped model in this checkout (make refit, then scripts/ship_model.py)")
    clips = sorted((SHARED_DATA / "gtzan-samples").glob("*.wav"))
    if not clips:
        pytest.skip("../shared/data is absent")
    result = _run(runtime / "audiotagger", "tag", clips[0], "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["genre"] and "energy" in out["features"]


def test_write_tags_dry_run_with_the_library_extra(
    runtime: Path, exported: Path, tmp_path: Path
) -> None:
    result = _run(runtime / "python", "-m", "pip", "install", "-q", "mutagen>=1.47")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "music"
    folder.mkdir()
    samples, _ = render_clip("jazz", "calm", 6.0, 44100, np.random.default_rng(1))
    sf.write(folder / "a.flac", samples, 44100)
    before = (folder / "a.flac").read_bytes()
    result = _run(runtime / "audiotagger", "write-tags", folder, "--checkpoint", exported)
    assert result.returncode == 0, result.stderr
    assert (folder / "a.flac").read_bytes() == before  # a dry run writes nothing


def test_a_subcommand_whose_extra_is_missing_says_which(runtime: Path) -> None:
    result = _run(runtime / "audiotagger", "train", "--help")
    assert result.returncode == 2
    assert (
        result.stderr.startswith("error: audiotagger train needs ") and "[train]" in result.stderr
    )


def test_the_console_entry_lists_its_commands(runtime: Path) -> None:
    result = _run(runtime / "audiotagger", "--help")
    assert result.returncode == 0
    for name in ("tag", "write-tags", "similar", "serve", "export", "train"):
        assert name in result.stdout
    assert sys.executable  # the test's own interpreter stays untouched


def test_the_wheel_ships_the_beets_plugin_in_the_beetsplug_namespace(runtime: Path) -> None:
    result = _run(
        runtime / "python",
        "-c",
        "import importlib.util as u; print(u.find_spec('beetsplug.audiotagger').origin)",
        cwd=runtime,  # not the checkout, whose beetsplug/ would shadow the installed one
    )
    assert result.returncode == 0, result.stderr
    plugin = Path(result.stdout.strip())
    assert plugin.name == "audiotagger.py" and "site-packages" in plugin.parts
    # a namespace package: beets' own plugins live in it too
    assert not (plugin.parent / "__init__.py").exists()
