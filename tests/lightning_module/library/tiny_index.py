"""A small library index from generated embeddings, for tests that need songs but no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightning_module.library import similarity as sim


def ring_embeddings(n: int, dim: int = 16, noise: float = 0.003, seed: int = 0) -> np.ndarray:
    """(n, dim) unit vectors on a noisy closed curve, song i next to songs i - 1 and i + 1: the
    smooth way from one song to another follows the curve, the straight line cuts across it."""
    theta = 2 * np.pi * np.arange(n) / n
    x = np.zeros((n, dim))
    x[:, 0], x[:, 1] = np.cos(theta), np.sin(theta)
    x[:, 2], x[:, 3] = 0.5 * np.cos(2 * theta), 0.5 * np.sin(2 * theta)
    x[:, 4] = 1.0  # all in one half-space, as real embeddings are
    x += noise * np.random.default_rng(seed).standard_normal(x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_tiny_index(
    music: Path, index_path: Path, n: int = 12, make_file=None, dim: int = 16
) -> sim.LibraryIndex:
    """``n`` songs ``music/album{i // 10}/song{i:03d}.wav`` (empty files, or ``make_file(path)``)
    with :func:`ring_embeddings`, saved as an index at ``index_path``."""
    entries = []
    for i in range(n):
        path = music / f"album{i // 10}" / f"song{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if make_file is None:
            path.touch()
        else:
            make_file(path)
        tags = {"genre": [["rock" if i < n // 2 else "jazz", 0.9]]}
        entries.append(sim.Entry(str(path.resolve()), path.stat().st_size, 0, tags))
    model = {"name": "tiny", "embed_dim": dim, "notes": []}
    index = sim.LibraryIndex(entries, ring_embeddings(n, dim), model)
    index.save(index_path)
    return index
