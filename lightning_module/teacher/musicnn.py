"""The musicnn teacher: its pretrained TensorFlow graph run on our float32 log-mel, and the
converter of its checkpoints into :class:`~lightning_module.model.backbones.musicnn.MusicnnBackbone`
(``*_musicnn``) or :class:`~lightning_module.model.backbones.musicnn_vgg.MusicnnVggBackbone`
(``*_vgg``).

This is the only module that imports TensorFlow, and only inside functions, so the rest of the
project never needs it. Install the optional teacher with ``make musicnn`` (``pip install -e
.[musicnn]`` then ``pip install --no-deps musicnn``: the wheel's ``numpy<1.17`` pin is stale).

We never call ``musicnn.extractor.batch_data``: it casts the mel power to float16 before
log10(10000·x + 1), which overflows to inf under NumPy 2, and every loud clip then gets the same
meaningless taggram. The teacher's input here is our own :class:`~.model.frontend.LogMel`
with :data:`~.backbones.musicnn.MUSICNN_FRONTEND` (float32 throughout), cut into
musicnn's 3 s patches (187 frames, no overlap, the tail covered by an end-aligned patch; clips
shorter than one patch are repeat-padded as musicnn was trained).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.audio import window_starts
from datamodules.io import atomic_open
from lightning_module.model.backbones.musicnn import (
    MUSICNN_FRONTEND,
    PATCH_FRAMES,
    musicnn_logmel,
    tag_slug,
)
from lightning_module.model.backbones.musicnn_vgg import MusicnnVggBackbone
from lightning_module.model.backbones.pretrained import ARCHITECTURES, architecture
from lightning_module.model.frontend import LogMel

MODELS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
DEFAULT_MODEL = "MSD_musicnn"


class TeacherUnavailableError(RuntimeError):
    """TensorFlow or the musicnn wheel is not installed; the message says how to install them."""


def import_tensorflow() -> Any:
    """Import TensorFlow for musicnn's TF1-style graph (legacy Keras layers, quiet logs)."""
    # Must be set before TensorFlow is first imported: tf.compat.v1.layers needs Keras 2 (tf-keras).
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as err:
        raise TeacherUnavailableError(
            "the musicnn teacher needs TensorFlow: run `make musicnn` "
            "(pip install -e '.[musicnn]' && pip install --no-deps musicnn)"
        ) from err
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    return tf


def model_dir(model: str = DEFAULT_MODEL) -> Path:
    """The folder of ``model``'s checkpoint inside the installed musicnn wheel."""
    if model not in MODELS:
        raise ValueError(f"unknown musicnn model {model!r} (known: {', '.join(MODELS)})")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or spec.origin is None:
        raise TeacherUnavailableError(
            "the musicnn package is not installed: run `make musicnn` "
            "(pip install --no-deps musicnn)"
        )
    folder = Path(spec.origin).parent / model
    if not (folder / ".index").is_file():
        raise TeacherUnavailableError(f"{folder}: no TensorFlow checkpoint in the musicnn wheel")
    return folder


def raw_tag_names(model: str = DEFAULT_MODEL) -> list[str]:
    """The model's 50 tags as musicnn spells them (``"Hip-Hop"``, ``"female vocalists"``)."""
    model_dir(model)
    from musicnn import configuration  # plain constants, imports nothing

    return list(configuration.MSD_LABELS if model.startswith("MSD") else configuration.MTT_LABELS)


def tag_names(model: str = DEFAULT_MODEL) -> list[str]:
    """The model's tags as manifest names (``hip_hop``, ``female_vocalists``): see ``tag_slug``."""
    return [tag_slug(name) for name in raw_tag_names(model)]


def teacher_frontend() -> LogMel:
    """Our LogMel configured as musicnn's input (float32, no float16 anywhere)."""
    return musicnn_logmel()


def patches(mel: np.ndarray, frames: int = PATCH_FRAMES) -> np.ndarray:
    """Cut a (T, n_mels) log-mel into (n_patches, frames, n_mels) musicnn inputs.

    Patches do not overlap (musicnn's extractor default); when the length is not a multiple of
    ``frames`` a last patch aligned to the end covers the tail. Shorter clips are repeat-padded.
    """
    if len(mel) < frames:
        mel = np.resize(mel, (frames, mel.shape[1])) if len(mel) else mel
        if len(mel) == 0:
            raise ValueError("empty spectrogram")
    starts = window_starts(len(mel), frames, frames)
    return np.stack([mel[s : s + frames] for s in starts]).astype(np.float32)


# -- checkpoint → PyTorch --------------------------------------------------------------------------
def read_checkpoint(model: str = DEFAULT_MODEL) -> dict[str, np.ndarray]:
    """Every trained variable of ``model``'s checkpoint (optimizer slots left out), by TF name."""
    tf = import_tensorflow()
    # The wheel's `checkpoint` file names its author's absolute path; the folder, with a trailing
    # slash, is the prefix of its `.index` / `.data-*` files.
    reader = tf.compat.v1.train.NewCheckpointReader(str(model_dir(model)) + os.sep)
    return {
        name: reader.get_tensor(name)
        for name in sorted(reader.get_variable_to_shape_map())
        if "Adam" not in name and not name.endswith("_power")
    }


def _batch_norm(tf_name: str) -> dict[str, tuple[str, str]]:
    return {
        "weight": (f"{tf_name}/gamma", "copy"),
        "bias": (f"{tf_name}/beta", "copy"),
        "running_mean": (f"{tf_name}/moving_mean", "copy"),
        "running_var": (f"{tf_name}/moving_variance", "copy"),
    }


def _variable_map() -> dict[str, tuple[str, str]]:
    """PyTorch key → (TF variable, layout conversion), in the order musicnn builds its layers."""
    mapping: dict[str, tuple[str, str]] = {}

    def add(prefix: str, table: dict[str, tuple[str, str]]) -> None:
        mapping.update({f"{prefix}.{k}": v for k, v in table.items()})

    add("input_norm", _batch_norm("batch_normalization"))
    blocks = ["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2"]
    for i, block in enumerate(blocks):
        conv = "conv2d" if i == 0 else f"conv2d_{i}"
        add(
            block,
            {"conv.weight": (f"{conv}/kernel", "conv2d"), "conv.bias": (f"{conv}/bias", "copy")},
        )
        add(f"{block}.norm", _batch_norm(f"batch_normalization_{i + 1}"))
    for i in range(3):
        conv = f"conv2d_{5 + i}"
        add(
            f"midend.{i}",
            {"conv.weight": (f"{conv}/kernel", "conv1d"), "conv.bias": (f"{conv}/bias", "copy")},
        )
        add(f"midend.{i}.norm", _batch_norm(f"batch_normalization_{6 + i}"))
    add("pool_norm", _batch_norm("batch_normalization_9"))
    add("dense", {"weight": ("dense/kernel", "dense"), "bias": ("dense/bias", "copy")})
    add("dense_norm", _batch_norm("batch_normalization_10"))
    add("tag_head", {"weight": ("dense_1/kernel", "dense"), "bias": ("dense_1/bias", "copy")})
    return mapping


def _vgg_variable_map() -> dict[str, tuple[str, str]]:
    """PyTorch key → (TF variable, layout) for ``vgg()``: its convolutions are named ``1CNN`` …
    ``5CNN``; its BatchNorms are numbered in build order (the input's first)."""
    mapping = {f"input_norm.{k}": v for k, v in _batch_norm("batch_normalization").items()}
    for i in range(MusicnnVggBackbone.BLOCKS):
        mapping[f"blocks.{i}.conv.weight"] = (f"{i + 1}CNN/kernel", "conv2d")
        mapping[f"blocks.{i}.conv.bias"] = (f"{i + 1}CNN/bias", "copy")
        norm = _batch_norm(f"batch_normalization_{i + 1}")
        mapping.update({f"blocks.{i}.norm.{k}": v for k, v in norm.items()})
    # The dense layer reads pool5 flattened in TF's (time, band, channel) order, which is the
    # order MusicnnVggBackbone flattens in: the kernel only needs transposing.
    mapping["tag_head.weight"] = ("dense/kernel", "dense")
    mapping["tag_head.bias"] = ("dense/bias", "copy")
    return mapping


#: Architecture → its variable map (see :data:`~.backbones.pretrained.ARCHITECTURES`).
VARIABLE_MAPS = {"musicnn": _variable_map, "vgg": _vgg_variable_map}


def _to_torch(value: np.ndarray, layout: str) -> torch.Tensor:
    if layout == "conv2d":  # TF (kh, kw, in, out) → PyTorch (out, in, kh, kw)
        value = value.transpose(3, 2, 0, 1)
    elif layout == "conv1d":  # TF (7, channels, 1, out) over a (time, channel) image → (out, ch, 7)
        value = value[:, :, 0, :].transpose(2, 1, 0)
    elif layout == "dense":  # TF (in, out) → PyTorch (out, in)
        value = value.T
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def convert_checkpoint(model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """``model``'s checkpoint as weights for :class:`MusicnnBackbone` (``*_musicnn``) or
    :class:`MusicnnVggBackbone` (``*_vgg``), default size.

    Returns:
        ``{"state_dict": OrderedDict, "tag_names": [...], "model": model}``; every backbone key is
        filled and every trained TF variable is used exactly once (checked).
    """
    variables = read_checkpoint(model)
    mapping = VARIABLE_MAPS[architecture(model)]()
    reference = ARCHITECTURES[architecture(model)]().state_dict()
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, expected in reference.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
            continue
        tf_name, layout = mapping[key]
        if tf_name not in variables:
            raise ValueError(f"{model_dir(model)}: checkpoint has no variable {tf_name}")
        tensor = _to_torch(variables[tf_name], layout)
        if tensor.shape != expected.shape:
            raise ValueError(
                f"{model_dir(model)}: {tf_name} has shape {tuple(tensor.shape)}, "
                f"{key} needs {tuple(expected.shape)}"
            )
        state[key] = tensor
    unused = set(variables) - {tf_name for tf_name, _ in mapping.values()}
    if unused:
        raise ValueError(f"{model_dir(model)}: unconverted variable(s) {', '.join(sorted(unused))}")
    return {"state_dict": state, "tag_names": tag_names(model), "model": model}


def save_converted(model: str, out: str | os.PathLike) -> Path:
    """Convert ``model`` and save it with ``torch.save`` (temp file + rename)."""
    data = convert_checkpoint(model)
    with atomic_open(out, "wb") as f:
        torch.save(data, f)
    return Path(out)


# -- the TensorFlow graph --------------------------------------------------------------------------
class MusicnnTeacher:
    """musicnn's own TensorFlow graph with its pretrained weights, in a private graph and session.

    Args:
        model: one of :data:`MODELS`.
        threads: TensorFlow intra-op threads (default: PyTorch's thread count).
        batch_size: patches per ``session.run``.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, threads: int | None = None, batch_size: int = 16
    ) -> None:
        tf = import_tensorflow()
        folder = model_dir(model)
        from musicnn import models  # defines the graph with tf.compat.v1.layers

        self.model = model
        self.batch_size = batch_size
        self.tag_names = tag_names(model)
        self.frontend = teacher_frontend().eval()
        self.graph = tf.Graph()
        with self.graph.as_default():
            # musicnn pools over time, so any number of frames (musicnn itself fixes 187); the
            # VGG's dense layer reads a map whose size depends on it: 187 only.
            frames = PATCH_FRAMES if architecture(model) == "vgg" else None
            self.input = tf.compat.v1.placeholder(
                tf.float32, [None, frames, MUSICNN_FRONTEND.n_mels]
            )
            with warnings.catch_warnings():  # tf.compat.v1.layers deprecation, once per layer
                warnings.simplefilter("ignore")
                self.logits = models.define_model(self.input, False, model, len(self.tag_names))[0]
            threads = threads or torch.get_num_threads()
            self.session = tf.compat.v1.Session(
                graph=self.graph,
                config=tf.compat.v1.ConfigProto(
                    intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
                ),
            )
            tf.compat.v1.train.Saver().restore(self.session, str(folder) + os.sep)

    def logits_of(self, mel_patches: np.ndarray) -> np.ndarray:
        """(n, frames, 96) float32 log-mel patches → (n, n_tags) logits."""
        batches = [
            self.session.run(self.logits, {self.input: mel_patches[i : i + self.batch_size]})
            for i in range(0, len(mel_patches), self.batch_size)
        ]
        return np.concatenate(batches).astype(np.float32)

    def mel(self, wave: torch.Tensor | np.ndarray) -> np.ndarray:
        """(samples,) waveform at 16 kHz (a tensor or, as load_audio returns it, an array) →
        (frames, 96) float32 log-mel, musicnn's layout."""
        with torch.inference_mode():
            return self.frontend(torch.as_tensor(wave).float()[None])[0, 0].T.numpy()

    def taggram(self, wave: torch.Tensor | np.ndarray) -> np.ndarray:
        """(samples,) waveform at 16 kHz → (n_patches, n_tags) tag probabilities per 3 s patch."""
        logits = self.logits_of(patches(self.mel(wave)))
        return 1.0 / (1.0 + np.exp(-logits))

    def tag(self, wave: torch.Tensor | np.ndarray) -> np.ndarray:
        """(samples,) waveform at 16 kHz → (n_tags,) clip probabilities (patches averaged)."""
        return self.taggram(wave).mean(axis=0)

    def top_tags(self, wave: torch.Tensor | np.ndarray, top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` most probable tags of a 16 kHz waveform, as musicnn spells them."""
        probabilities = self.tag(wave)
        names = raw_tag_names(self.model)
        return [(names[i], float(probabilities[i])) for i in np.argsort(-probabilities)[:top]]

    def close(self) -> None:
        self.session.close()


@functools.lru_cache(maxsize=2)
def load_teacher(model: str = DEFAULT_MODEL, threads: int | None = None) -> MusicnnTeacher:
    """A shared :class:`MusicnnTeacher` per model (building the graph costs seconds)."""
    return MusicnnTeacher(model, threads=threads)
