"""Refit the tempo and key branches of a trained model on ground truth, chosen on val.

``fit_branches`` (``scripts/fit_branches.py``, the last step of ``make refit``) takes a checkpoint
and the manifests with listener tempi and annotated keys, computes the branches' fixed inputs once
(``training.branch_data``: speed-changed training clips, so a label moves with its audio), fits
each candidate's learned part, picks one per branch by 3-fold cross-validation over the train and
val clips (val alone has a few dozen), reports every candidate's cross-validation score and its
train-split fit on train, val and test, refits the chosen ones on every labelled clip, and writes
a checkpoint that is the input with a key head added (format 5) and the refitted tempo MLP. The
backbone and every other head are untouched: genre, mood and the features predict as before.

Scores are per clip: window probabilities averaged, as the ``Tagger`` does.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.analysis.key import KEY_NAMES, mirex_scores
from datamodules.analysis.tempo import tempo_accuracy
from datamodules.io import atomic_path
from datamodules.manifest import write_manifest
from lightning_module.inference.checkpoint import load_checkpoint, load_network
from lightning_module.model.key import KeyBranch
from lightning_module.model.spec import FORMAT_VERSION, TaggerSpec, upgrade
from lightning_module.model.tempo import TempoBranch
from lightning_module.model.tempo_bins import tempo_bins
from lightning_module.training.branch_data import (
    TRAIN_SHIFTS,
    BranchInputs,
    collect_inputs,
    inputs_key,
    labelled_clips,
    load_inputs,
    merge_manifests,
    save_inputs,
)

#: Key candidates: name → (hidden channels of the learned scorer, epochs); ``None``: the DSP
#: estimator, Krumhansl-Kessler profiles, nothing learned.
KEY_CANDIDATES: dict[str, tuple[int | None, int]] = {
    "dsp": (None, 0),
    "profiles": (0, 200),
    "hidden16": (16, 200),
    "hidden16, 100 epochs": (16, 100),
}
#: Folds of the cross-validation that chooses each branch (over train + val clips: val alone
#: holds a few dozen clips with a key or a tempo, too few to tell candidates apart).
FOLDS = 3
#: The model's own tempo branch, reported for reference only (see :func:`fit_tempo`).
TEMPO_REFERENCE = "as trained (reference)"


@dataclass
class Fitted:
    """One candidate: its module and its per-split scores."""

    name: str
    module: torch.nn.Module
    scores: dict[str, dict[str, float]]


def _clip_mean(probs: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, the mean of its windows' probabilities. Returns (clip ids, (clips, n))."""
    ids = np.unique(clips)
    return ids, np.stack([probs[clips == c].mean(0) for c in ids])


def _train(
    module: torch.nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
    epochs: int,
    lr: float = 0.01,
    seed: int = 0,
) -> None:
    """Full-batch AdamW on a small module (the inputs are fixed arrays)."""
    torch.manual_seed(seed)
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-3)
    module.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss(forward(x)).backward()
        optimiser.step()
    module.eval()


def key_scores(module: KeyBranch, inputs: BranchInputs, rows: np.ndarray) -> dict[str, float]:
    """Clip-level key accuracy and MIREX scores on windows ``rows`` with a key."""
    rows = rows[inputs.key[rows] >= 0]
    if rows.size == 0:
        return {"n": 0}
    with torch.no_grad():
        probs = module.score(torch.from_numpy(inputs.chroma[rows])).softmax(-1).numpy()
    ids, clip_probs = _clip_mean(probs, inputs.clip[rows])
    truth = np.array([inputs.key[rows][inputs.clip[rows] == c][0] for c in ids])
    scores = mirex_scores(clip_probs.argmax(-1), truth)
    return {"accuracy": scores["correct"], **scores}


def train_key(
    inputs: BranchInputs, rows: np.ndarray, spec: TaggerSpec, hidden: int | None, epochs: int = 400
) -> KeyBranch:
    """A key scorer with ``hidden`` channels fitted on windows ``rows`` that have a key
    (``None``: the DSP estimator, nothing fitted)."""
    module = KeyBranch(spec.sample_rate, n_fft=spec.key_n_fft, hidden=hidden or 0)
    rows = rows[inputs.key[rows] >= 0]
    if hidden is not None and rows.size:
        x = torch.from_numpy(inputs.chroma[rows])
        y = torch.from_numpy(inputs.key[rows]).long()
        _train(module, module.score, x, lambda logits: F.cross_entropy(logits, y), epochs)
    return module.eval()


def cross_validate(
    inputs: BranchInputs,
    labelled: np.ndarray,
    fit: Callable[[np.ndarray], torch.nn.Module],
    score: Callable[[torch.nn.Module, np.ndarray], dict[str, float]],
    folds: int = FOLDS,
) -> dict[str, float]:
    """Pooled held-out scores of ``fit`` over ``folds`` folds of the train + val clips that
    have a label (``labelled``: (W,) bool per window): each fold's clips are held out whole
    (every speed change of them), the rest fitted, the held-out clips scored as they are."""
    splits = np.array([c.split for c in inputs.clips])
    clips = np.unique(inputs.clip[labelled & np.isin(splits[inputs.clip], ["train", "val"])])
    np.random.default_rng(0).shuffle(clips)
    pooled: dict[str, float] = {}
    total = 0
    for held in np.array_split(clips, folds):
        out = np.isin(inputs.clip, held)
        train = np.flatnonzero(~out & np.isin(inputs.clip, clips))
        scores = score(fit(train), np.flatnonzero(out & (inputs.shift == 0)))
        n = scores.get("n", 0)
        total += n
        for k, v in scores.items():
            if k != "n":
                pooled[k] = pooled.get(k, 0.0) + v * n
    return {**{k: v / total for k, v in pooled.items()}, "n": total} if total else {"n": 0}


def _scored(
    name: str,
    inputs: BranchInputs,
    labelled: np.ndarray,
    fit: Callable[[np.ndarray], torch.nn.Module],
    score: Callable[[torch.nn.Module, np.ndarray], dict[str, float]],
) -> Fitted:
    """A candidate's cross-validation scores, and its train-split fit scored on each split."""
    module = fit(inputs.rows("train"))
    scores = {s: score(module, inputs.rows(s)) for s in ("train", "val", "test")}
    scores["cv"] = cross_validate(inputs, labelled, fit, score)
    return Fitted(name, module, scores)


def fit_key(inputs: BranchInputs, spec: TaggerSpec) -> list[Fitted]:
    """Every key candidate: cross-validated, and fitted on train and scored on every split."""
    labelled = inputs.key >= 0

    def score(module: torch.nn.Module, rows: np.ndarray) -> dict[str, float]:
        return key_scores(module, inputs, rows)

    fitted = []
    for name, (hidden, epochs) in KEY_CANDIDATES.items():

        def fit(rows: np.ndarray, hidden: int | None = hidden, epochs: int = epochs) -> KeyBranch:
            return train_key(inputs, rows, spec, hidden, epochs)

        fitted.append(_scored(name, inputs, labelled, fit, score))
    return fitted


def tempo_scores(
    module: TempoBranch, inputs: BranchInputs, rows: np.ndarray, spec: TaggerSpec
) -> dict[str, float]:
    """Clip-level tempo Acc1 / Acc2 on windows ``rows`` with a tempo."""
    rows = rows[np.isfinite(inputs.tempo[rows])]
    if rows.size == 0:
        return {"n": 0}
    bins = tempo_bins(spec)
    with torch.no_grad():
        logits = module.mlp(torch.from_numpy(inputs.acf[rows]).flatten(1))
    ids, clip_probs = _clip_mean(logits.softmax(-1).numpy(), inputs.clip[rows])
    truth = np.array([inputs.tempo[rows][inputs.clip[rows] == c][0] for c in ids])
    acc1, acc2 = tempo_accuracy(bins.decode(clip_probs), truth)
    return {"acc1": float(np.mean(acc1)), "acc2": float(np.mean(acc2)), "n": int(ids.size)}


def train_tempo(
    inputs: BranchInputs,
    rows: np.ndarray,
    spec: TaggerSpec,
    trained: TempoBranch,
    epochs: int = 300,
) -> TempoBranch:
    """The tempo branch's MLP fitted afresh on windows ``rows`` that have a listener tempo."""
    bins = tempo_bins(spec)
    module = copy.deepcopy(trained)
    for layer in module.mlp:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    rows = rows[np.isfinite(inputs.tempo[rows])]
    x = torch.from_numpy(inputs.acf[rows]).flatten(1)
    target = bins.soft_targets(torch.from_numpy(inputs.tempo[rows]).float())

    def loss(logits: torch.Tensor) -> torch.Tensor:
        return -(target * logits.log_softmax(-1)).sum(-1).mean()

    _train(module, module.mlp, x, loss, epochs, lr=3e-3)
    return module.eval()


#: Tempo candidates: name → whether the training windows include the speed changes.
TEMPO_CANDIDATES: dict[str, bool] = {"speed changes": True, "no speed change": False}


def fit_tempo(inputs: BranchInputs, spec: TaggerSpec, trained: TempoBranch) -> list[Fitted]:
    """Tempo candidates, cross-validated and scored on every split: the MLP fitted afresh with and
    without the speed changes; and the model's own branch for reference only (not a candidate:
    ``make refit`` trains it on every split, val and test included)."""
    labelled = np.isfinite(inputs.tempo)

    def score(module: torch.nn.Module, rows: np.ndarray) -> dict[str, float]:
        return tempo_scores(module, inputs, rows, spec)

    reference = trained.eval()
    fitted = [
        Fitted(
            TEMPO_REFERENCE,
            reference,
            {s: score(reference, inputs.rows(s)) for s in ("train", "val", "test")},
        )
    ]
    for name, speed in TEMPO_CANDIDATES.items():

        def fit(rows: np.ndarray, speed: bool = speed) -> TempoBranch:
            return train_tempo(
                inputs, rows if speed else rows[inputs.shift[rows] == 0], spec, trained
            )

        fitted.append(_scored(name, inputs, labelled, fit, score))
    return fitted


def _best(fitted: list[Fitted], keys: tuple[str, ...]) -> Fitted:
    """The candidate with the best cross-validation scores (``keys`` in order break ties; the
    first listed candidate wins a full tie: the simplest)."""
    return max(fitted, key=lambda f: tuple(f.scores["cv"].get(k, -1.0) for k in keys))


def fit_branches(
    checkpoint: str | os.PathLike,
    manifests: list[str | os.PathLike],
    out: str | os.PathLike,
    work_dir: str | os.PathLike,
    progress: bool = True,
    fit_on: str = "all",
) -> dict[str, Any]:
    """Refit the branches of ``checkpoint`` (see the module docstring); write the new checkpoint
    to ``out`` and return the report (also written beside it as ``<out>.branches.json``).

    Raises:
        ValueError: a model without a tempo branch, or no labelled clip in the manifests.
    """
    net, spec = load_network(checkpoint)
    if getattr(net, "tempo", None) is None:
        raise ValueError(f"{checkpoint}: the model has no tempo branch to refit")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "branch_inputs.npz"
    merged = merge_manifests(manifests)
    # The merged manifest (the training splits, with tempo and key columns): what ``evaluate.py``
    # scores the new checkpoint on.
    write_manifest(merged, work / "manifest.csv")
    clips = labelled_clips(merged)
    if not clips:
        raise ValueError("no clip with a listener tempo or an annotated key in the manifests")
    key = inputs_key(net, spec, clips, TRAIN_SHIFTS)
    # Reused only when computed from the same clips, audio files and settings; anything else
    # (another manifest, a changed front-end, an older cache without a key) is computed again.
    inputs = load_inputs(cache)
    if inputs is None or inputs.cache_key != key:
        inputs = collect_inputs(net, spec, clips, progress=progress)
        inputs.cache_key = key
        save_inputs(inputs, cache)
    key_fits = fit_key(inputs, spec)
    tempo_fits = fit_tempo(inputs, spec, net.tempo)
    key_best = _best(key_fits, ("weighted", "accuracy"))
    tempo_best = _best([f for f in tempo_fits if f.name != TEMPO_REFERENCE], ("acc1", "acc2"))
    # Chosen on val, the winners are refitted on every labelled clip for the shipped model (as
    # ``make refit`` does for the student); the reported scores are the train-only fits'.
    if fit_on not in ("all", "train"):
        raise ValueError(f"fit_on must be 'all' or 'train', not {fit_on!r}")
    # ``train``: a checkpoint whose branches never saw val or test, for ``evaluate.py``.
    every = np.arange(len(inputs.clip)) if fit_on == "all" else inputs.rows("train")
    key_final = train_key(inputs, every, spec, *KEY_CANDIDATES[key_best.name])
    speed = every if TEMPO_CANDIDATES[tempo_best.name] else every[inputs.shift == 0]
    tempo_final = train_tempo(inputs, speed, spec, net.tempo)

    source = load_checkpoint(checkpoint)
    # The input's own key head (if any) is replaced whole: its architecture may differ.
    state = {k: v for k, v in source["state_dict"].items() if not k.startswith("net.key.")}
    state.update({f"net.key.{k}": v for k, v in key_final.state_dict().items()})
    state.update({f"net.tempo.{k}": v for k, v in tempo_final.state_dict().items()})
    # What each refitted head now rests on: the clips with a listener tempo / an annotated key.
    old = TaggerSpec.from_hparams(source["hyper_parameters"])
    used = [c for c in inputs.clips if fit_on == "all" or c.split == "train"]
    n_tempo = sum(1 for c in used if c.tempo is not None)
    n_key = sum(1 for c in used if c.key is not None)
    feature_sources = [
        {"human": n_tempo} if name == "tempo" else dict(sources)
        for name, sources in zip(old.feature_names, old.feature_sources, strict=False)
    ]
    learned = KEY_CANDIDATES[key_best.name][0] is not None
    current = upgrade(source["hyper_parameters"])  # stamped with this format below: its layout
    hparams = {
        **current,
        "feature_sources": feature_sources or current.get("feature_sources"),
        "key_sources": {"human": n_key} if learned else {"dsp:krumhansl": 0},
        "key_names": list(KEY_NAMES),
        "key_n_fft": spec.key_n_fft,
        "key_hidden": KEY_CANDIDATES[key_best.name][0] or 0,
        "format_version": FORMAT_VERSION,
    }
    # The new spec must rebuild a network these weights fit exactly.
    rebuilt = TaggerSpec.from_hparams(hparams)
    from lightning_module.model.network import build_network

    build_network(rebuilt).load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save({"state_dict": state, "hyper_parameters": hparams}, tmp)
    report = {
        "checkpoint": str(checkpoint),
        "manifest": str(work / "manifest.csv"),
        "out": str(out),
        "clips": {
            split: {
                "tempo": sum(1 for c in inputs.clips if c.split == split and c.tempo is not None),
                "key": sum(1 for c in inputs.clips if c.split == split and c.key is not None),
            }
            for split in ("train", "val", "test")
        },
        "key": {
            "chosen": key_best.name,
            "candidates": {f.name: f.scores for f in key_fits},
        },
        "chosen_by": f"{FOLDS}-fold cross-validation over the train + val clips",
        "final_fit": "the chosen candidates refitted on every labelled clip (all splits)"
        if fit_on == "all"
        else "the chosen candidates fitted on the train split only",
        "tempo": {
            "chosen": tempo_best.name,
            "candidates": {f.name: f.scores for f in tempo_fits},
        },
    }
    with atomic_path(out.with_suffix(".branches.json")) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    return report
