"""Start training from another tagger's weights: ``--model.init_from PATH`` (``shipped``: the
shipped model), to fine-tune it on a user's own manifest (``configs/finetune.yaml``).

What carries over, and why:

- **the architecture** (backbone and its size, log-mel front-end, window length, tempo bins): the
  source's weights only fit, and only mean what they meant, with its settings, so the source
  dictates them (:func:`inherited_settings`; the CLI writes them into the config first, so the
  saved config agrees and the data module decodes at the source's sample rate and window);
- **the front-end, the backbone and the tempo branch**: copied; weights that do not fit are a
  one-line :class:`CheckpointError`;
- **each head whose labels equal the source's**: copied. A head whose labels differ (the user's own
  genres: other names, another count, another order) starts fresh; a head the source lacks is
  new; a source head the user's data has no labels for is dropped. The user's data module decides
  the label names, as in any training run. One log line per part says which.

The source is read with ``torch.load(weights_only=True)``
(:func:`~lightning_module.inference.checkpoint.load_checkpoint`): it may come from anywhere.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from lightning_module.inference.checkpoint import CheckpointError, load_checkpoint
from lightning_module.inference.shipped import ShippedModelError, shipped_checkpoint
from lightning_module.model.network import TaggerNet
from lightning_module.model.settings import changes_said
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS

#: ``--model.init_from shipped``: the shipped model's checkpoint (package data).
SHIPPED = "shipped"

#: Settings of the network's shape and input that the source dictates: its weights only fit (or,
#: for the mel settings, only mean what they meant) with them. The model's own options, so the
#: source's values replace the run's (each change logged); ``logmel`` as a whole group.
ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "backbone",
    "width",
    "blocks",
    "embed_dim",
    "logmel",
    "tempo_bins",
    "tempo_min",
    "tempo_max",
)
#: Settings the data module decides (the CLI links ``data.*`` into the model): the CLI sets them
#: from the source; a model built directly with other values is an error naming the field, since
#: changing them in the model alone would silently disagree with the audio it is fed.
DATA_FIELDS: tuple[str, ...] = ("sample_rate", "crop_seconds")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """A checkpoint to start from: where it is, what it is, and its network's weights (state-dict
    keys of :class:`TaggerNet`, without Lightning's ``net.`` prefix)."""

    path: Path
    spec: TaggerSpec
    state: Mapping[str, torch.Tensor]


def source_path(init_from: str | os.PathLike) -> Path:
    """The checkpoint ``init_from`` names (``shipped``: the shipped model's).

    Raises:
        CheckpointError: ``shipped`` while the shipped model is not installed (one line).
    """
    if str(init_from) != SHIPPED:
        return Path(init_from)
    try:
        return shipped_checkpoint()
    except ShippedModelError as err:  # a CheckpointError: scripts/train.py prints it as one line
        raise CheckpointError(f"--model.init_from shipped: {err}") from err


def load_source(init_from: str | os.PathLike) -> Source:
    """Read the checkpoint to start from, safely.

    Accepts a slim checkpoint (``state_dict`` + ``hyper_parameters``, as shipped) or any
    checkpoint a training run wrote.

    Raises:
        CheckpointError: missing, not a checkpoint, or not a tagger's (one line naming the file).
    """
    path = source_path(init_from)
    checkpoint = load_checkpoint(path)
    try:
        spec = TaggerSpec.from_hparams(checkpoint["hyper_parameters"])
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{path}: not a tagger's hyperparameters ({err})") from err
    state = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    if not state:
        raise CheckpointError(f"{path}: not a MusicTagger checkpoint (no net.* weights)")
    return Source(path, spec, state)


def source_settings(source: TaggerSpec) -> dict[str, Any]:
    """The source's architecture and data settings (:data:`ARCHITECTURE_FIELDS`,
    :data:`DATA_FIELDS`) as plain config values (lists, not tuples; a group as its dict)."""
    values = source.to_hparams()
    return {name: values[name] for name in (*ARCHITECTURE_FIELDS, *DATA_FIELDS)}


def _same_labels(source: TaggerSpec, own: TaggerSpec, task: str) -> bool:
    return bool(source.names(task)) and source.names(task) == own.names(task)


def inherited_settings(source: Source, hparams: Mapping[str, Any], say: Say) -> dict[str, Any]:
    """The hyperparameters a run with ``hparams`` takes from ``source``: the architecture
    settings that differ (each said), and the provenance the copied weights bring along.

    Provenance: the backbone learned from the source's rows, so ``train_sources`` adds the
    source's counts (a model fine-tuned on a few synthetic clips is then not called
    synthetic-only); when the feature head is copied, each feature's ``feature_sources`` adds the
    source's counts, so inference still shows the features the source learned even where the
    user's manifest has no values for them.

    Raises:
        CheckpointError: a data setting (sample rate, window) differs from the source's, or
            ``pretrained`` is set as well (two sets of starting weights).
    """
    if hparams.get("pretrained"):
        raise CheckpointError(
            "--model.init_from and --model.pretrained both give starting weights: choose one"
        )
    own = TaggerSpec.from_hparams(hparams)
    for name in DATA_FIELDS:
        theirs, mine = getattr(source.spec, name), getattr(own, name)
        if float(theirs) != float(mine):
            raise CheckpointError(
                f"{source.path}: trained with {name} {theirs}, this run has {mine} "
                f"(set --data.{name} {theirs})"
            )
    wanted = {k: v for k, v in source_settings(source.spec).items() if k in ARCHITECTURE_FIELDS}
    if wanted["tempo_bins"] and "tempo" not in own.feature_names:
        say(f"init_from {source.path}: tempo branch dropped (this run has no 'tempo' feature)")
        wanted["tempo_bins"] = 0
    current = own.to_hparams()
    changed = {k: v for k, v in wanted.items() if current[k] != v}
    if changed:
        say(
            f"init_from {source.path}: the source's architecture: "
            + ", ".join(changes_said(current, changed))
        )
    if source.spec.train_sources:
        merged = Counter(own.train_sources) + Counter(source.spec.train_sources)
        changed["train_sources"] = dict(merged)
    if _same_labels(source.spec, own, "features") and source.spec.provenance_known:
        changed["feature_sources"] = [
            dict(Counter(mine) + Counter(theirs))
            for mine, theirs in zip(
                own.feature_sources or [{}] * len(own.feature_names),
                source.spec.feature_sources,
                strict=True,
            )
        ]
    return changed


def _part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _misfit(module: nn.Module, weights: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``weights`` do not fit ``module`` (a missing, extra or differently shaped tensor), or
    None when they fit exactly."""
    own = module.state_dict()
    missing, extra = sorted(own.keys() - weights.keys()), sorted(weights.keys() - own.keys())
    if missing or extra:
        return f"{missing[0]} missing" if missing else f"unexpected {extra[0]}"
    for key, value in own.items():
        if value.shape != weights[key].shape:
            return f"{key}: {tuple(weights[key].shape)} in the source, {tuple(value.shape)} here"
    return None


def _restandardised(
    weights: Mapping[str, torch.Tensor], source: TaggerSpec, own: TaggerSpec
) -> dict[str, torch.Tensor]:
    """The feature head's weights re-expressed in this run's standardisation.

    The head predicts z-scores under the train-split mean/std of *its* data; this run's targets
    use the user's statistics. With z' = (m + s·z − m') / s' (m, s the source's; m', s' this
    run's) per feature, the linear head W·e + b becomes (s/s')·W·e + (s·b + m − m')/s': it
    predicts exactly the same natural-unit values (BPM, dB, 0-1) at the first step.
    """
    mean, std = (
        torch.tensor(v, dtype=torch.float64) for v in (source.feature_mean, source.feature_std)
    )
    mean2, std2 = (
        torch.tensor(v, dtype=torch.float64) for v in (own.feature_mean, own.feature_std)
    )
    weight, bias = weights["weight"], weights["bias"]
    scale = (std / std2).to(weight.dtype)
    return {
        "weight": weight * scale[:, None],
        "bias": ((std * bias.double() + mean - mean2) / std2).to(bias.dtype),
    }


def _describe(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
    return f"{len(names)} [{shown}]"


def copy_weights(
    source: Source, net: TaggerNet, spec: TaggerSpec, say: Say = rank_zero_info
) -> dict[str, str]:
    """Copy ``source``'s weights into ``net`` (built for ``spec``, with the source's
    architecture) and say, one line per part, what was kept and what starts fresh.

    Returns:
        part (``frontend``, ``backbone``, ``tempo``, and each head of either model) → ``kept``,
        ``re-initialised``, ``new`` or ``dropped``.

    Raises:
        CheckpointError: the front-end or backbone weights do not fit (one line).
    """
    report: dict[str, str] = {}
    for name in ("frontend", "backbone"):
        weights = _part(source.state, f"{name}.")
        why = _misfit(getattr(net, name), weights)
        if why:
            raise CheckpointError(f"{source.path}: its {name} does not fit this model ({why})")
        getattr(net, name).load_state_dict(weights)
        report[name] = "kept"
    say(f"init_from {source.path}: front-end and backbone kept")
    for name in net.branch_inputs:  # the tempo and key branches
        branch = getattr(net, name)
        weights = _part(source.state, f"{name}.")
        why = _misfit(branch, weights) if weights else "the source has none"
        if why is None:
            branch.load_state_dict(weights)
        report[name] = "kept" if why is None else "re-initialised"
        say(f"init_from {source.path}: {name} branch {report[name]}" + (f" ({why})" if why else ""))
    heads = net.heads.heads
    for task in (t.name for t in TASKS if t.input == "embedding"):
        theirs, mine = source.spec.names(task), spec.names(task)
        if not mine:
            if theirs:
                report[task] = "dropped"
                say(f"init_from {source.path}: {task} head dropped (no {task} labels in this run)")
            continue
        if not theirs:
            report[task] = "new"
            say(
                f"init_from {source.path}: {task} head new ({_describe(mine)}; the source has none)"
            )
            continue
        if theirs != mine:
            report[task] = "re-initialised"
            say(
                f"init_from {source.path}: {task} head re-initialised: labels differ "
                f"(source {_describe(theirs)}, this run {_describe(mine)})"
            )
            continue
        weights = _part(source.state, f"heads.heads.{task}.")
        why = _misfit(heads[task], weights)
        if why:
            raise CheckpointError(f"{source.path}: its {task} head does not fit ({why})")
        # Copying the feature head is right only because the names match row for row (a row is
        # one feature); its values are z-scores of the source's statistics, so it is re-expressed
        # in this run's (the user's train split's) rather than copied verbatim.
        if task == "features":
            weights = _restandardised(weights, source.spec, spec)
        heads[task].load_state_dict(weights)
        report[task] = "kept"
        say(f"init_from {source.path}: {task} head kept ({_describe(mine)})")
    return report


def warm_start_settings(
    init_from: str, hparams: Mapping[str, Any], say: Say = rank_zero_info
) -> tuple[Source, dict[str, Any]]:
    """The source ``init_from`` names and the hyperparameters the run takes from it (see
    :func:`load_source`, :func:`inherited_settings`)."""
    source = load_source(init_from)
    return source, inherited_settings(source, hparams, say)
