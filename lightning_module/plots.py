"""Every figure the project draws (matplotlib ``Figure`` + Agg canvas, never pyplot's global state).

- :func:`plot_timeline`: a file's windows over time (``audiotagger tag --plot``).
- :func:`confusion_figure`: a labelled confusion matrix, counts (``evaluate.py``'s PNGs) or
  row-normalised rates (TensorBoard's ``val_confusion/*``).
- :func:`scatter_figure`, :func:`logmel_figure`: TensorBoard's feature scatter plots and clips.
- :func:`figure_to_array` (an RGB image for TensorBoard) and :func:`save_png` (a file).

Kept out of ``inference`` so tagging never loads matplotlib: ``tag --plot``, the evaluation report
and the training callback import this module only when they draw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.formats.text import TIMELINE_FEATURES

if TYPE_CHECKING:
    from lightning_module.inference.tagger import ClipPrediction


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure with Agg; returns (height, width, 3) uint8."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, out: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG (parent folders created); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out


def confusion_figure(
    matrix: Any,
    labels: Sequence[str],
    title: str,
    predicted_labels: Sequence[str] | None = None,
    dpi: int = 80,
) -> Figure:
    """A labelled confusion matrix: rows are true classes (``labels``), columns predicted ones
    (``predicted_labels``, default ``labels``). ``matrix`` (rows, columns) is array-like: integer
    counts are written as integers, rates (e.g. row-normalised) with two decimals."""
    matrix = np.asarray(matrix)
    columns = list(labels if predicted_labels is None else predicted_labels)
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(2.6 + 0.55 * n_cols, 2.0 + 0.55 * n_rows), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n_cols), columns, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(n_rows), list(labels), fontsize=9)
    integer = np.issubdtype(matrix.dtype, np.integer)
    for (i, j), value in np.ndenumerate(matrix):
        # Dark cells get white text: the colour of the cell decides, as the colormap draws it.
        red, green, blue, _ = image.cmap(image.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        text = str(int(value)) if integer else f"{value:.2f}"
        ax.text(
            j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black"
        )
    ax.set_xlabel("Predicted class", fontsize=10)
    ax.set_ylabel("True class", fontsize=10)
    ax.set_title(title, fontsize=10)
    return fig


def scatter_figure(pred: np.ndarray, target: np.ndarray, name: str, r: float, r2: float) -> Figure:
    """Predicted vs teacher values of one feature (natural units), with the identity line."""
    fig = Figure(figsize=(3.6, 3.6), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(target, pred, s=6, alpha=0.5, linewidths=0)
    low = float(min(target.min(), pred.min()))
    high = float(max(target.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle="--")
    unit = f" ({FEATURE_UNITS[name]})" if FEATURE_UNITS.get(name) else ""
    ax.set_xlabel(f"teacher{unit}", fontsize=9)
    ax.set_ylabel(f"predicted{unit}", fontsize=9)
    ax.set_title(f"{name}  r={r:.2f}  R²={r2:.2f}", fontsize=10)
    return fig


def logmel_figure(spec: np.ndarray, sample_rate: int, hop_length: int, title: str) -> Figure:
    """One (n_mels, frames) log-mel spectrogram, time in seconds on x."""
    spec = np.asarray(spec)
    fig = Figure(figsize=(5.0, 2.4), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    seconds = spec.shape[-1] * hop_length / sample_rate
    image = ax.imshow(
        spec, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, spec.shape[0])
    )
    fig.colorbar(image, ax=ax, pad=0.01)
    ax.set_xlabel("time (s)", fontsize=9)
    ax.set_ylabel("mel band", fontsize=9)
    ax.set_title(title, fontsize=9)
    return fig


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
    return save_png(fig, out)
