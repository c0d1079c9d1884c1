"""Figures of predictions (matplotlib, Agg). Kept out of ``inference`` so tagging never loads
matplotlib; ``predict_clip --plot`` imports this module only when a plot is asked for."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lightning_module.inference.formats.text import TIMELINE_FEATURES
from lightning_module.inference.tagger import ClipPrediction


def plot_timeline(
    windows: Sequence[ClipPrediction], out: str | os.PathLike, title: str | None = None
) -> Path:
    """Save a PNG: genre and mood probabilities (stacked) and energy / valence over time."""
    if not windows:
        raise ValueError("no windows to plot")
    centres = [w.start + w.duration / 2 for w in windows]
    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for ax, task in zip(axes[:2], ("genre", "mood"), strict=True):
        names = sorted(name for name, _ in getattr(windows[0], task))
        if names:
            probs = [[dict(getattr(w, task))[n] for w in windows] for n in names]
            ax.stackplot(centres, probs, labels=names, alpha=0.85)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{task} probability")
    for name, _ in TIMELINE_FEATURES:
        if name in windows[0].features:
            axes[2].plot(centres, [w.features[name] for w in windows], marker=".", label=name)
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("0-1")
    axes[2].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    axes[2].set_xlabel("time (s), window centres")
    axes[0].set_title(title or str(windows[0].path or ""))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out
