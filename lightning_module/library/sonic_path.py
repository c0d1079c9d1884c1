"""Path playlists: from one song to another through the index's embedding space, in small steps.

A path of ``count`` songs starts at song A, ends at song B, holds no song twice, and each step
(the cosine distance between consecutive songs) should be small. :class:`PathSearch` finds one
with a beam search over the songs' nearest neighbours that minimises the sum of
``step ** power`` (``power`` 2 by default, and the bridges below: chosen by measurement,
``scripts/benchmark.py --paths``, docs/tag_your_library.md; a squared cost spreads the distance
over the steps instead of taking one big jump):

* each of the ``beam`` best partial paths is extended by each of the ``k`` nearest neighbours of
  its last song not already on it (the index's :class:`~.similarity.Searcher`: exact, or its
  HNSW graph on large libraries), and by the ``line`` songs nearest this position's point on
  the straight A→B line (bridges: the neighbour lists of a tight cluster of songs never leave
  it); the final step always goes to B;
* partial paths are ranked by their cost so far plus a lower bound of what is left: ``r`` steps
  from a song at chord length ``l`` from B (unit vectors, ``l**2 = 2 * cosine distance``) cost at
  least ``r * ((l / r)**2 / 2) ** power`` (triangle inequality; the cost is convex in the
  chord), so paths heading for B early win and the steps come out even;
* of the partial paths ending on the same song only the best is kept (the beam stays diverse);
  when no extension is left (every neighbour already used), more neighbours are asked for.

The two baselines it is measured against (``scripts/benchmark.py --paths``) are here too:
:func:`random_path` and :func:`straight_line_path` (the unused song nearest each of ``count - 2``
evenly spaced points on the A→B line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lightning_module.library.similarity import LibraryIndex, Searcher

#: Neighbours of each song a partial path may step to, and partial paths kept per step.
PATH_NEIGHBOURS = 24
PATH_BEAM = 64
#: The step cost is ``cosine_distance ** PATH_POWER``.
PATH_POWER = 2.0


class PathSearch:
    """Path playlists over ``index`` (see the module docstring); one per index, reusable.

    Args:
        searcher: the index's nearest-neighbour search.
        k: neighbours per song considered as next step.
        beam: partial paths kept per step.
        power: the step cost is ``cosine_distance ** power``.
        line: songs near each point of the straight A→B line also offered as next step
            (bridges between clusters the neighbour lists do not cross; 0: none).
    """

    def __init__(
        self,
        index: LibraryIndex,
        searcher: Searcher,
        k: int = PATH_NEIGHBOURS,
        beam: int = PATH_BEAM,
        power: float = PATH_POWER,
        line: int = PATH_NEIGHBOURS,
    ) -> None:
        self.index = index
        self.searcher = searcher
        self.k = k
        self.beam = beam
        self.power = power
        self.line = line

    def _neighbours(self, rows: np.ndarray, k: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
        """(len(rows), k) neighbour rows and cosine distances (padded with -1 / inf), cached
        per song for the query."""
        missing = sorted({int(r) for r in rows if (int(r), k) not in cache})
        if missing:
            labels, dists = self.searcher.rows(self.index.embeddings[missing], k + 1)
            for r, lab, dist in zip(missing, labels, dists, strict=True):
                keep = lab != r
                lab, dist = lab[keep][:k], dist[keep][:k]
                pad = k - lab.size
                cache[(r, k)] = (
                    np.concatenate([lab, np.full(pad, -1, np.int64)]),
                    np.concatenate([dist, np.full(pad, np.inf, np.float32)]),
                )
        pairs = [cache[(int(r), k)] for r in rows]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def _line_songs(self, start: int, end: int, count: int) -> np.ndarray | None:
        """(count - 2, line) rows: the songs nearest each of the evenly spaced points of the
        straight A→B line, one row per position of the path between A and B (None: off)."""
        if not self.line:
            return None
        x = self.index.embeddings
        t = (np.arange(1, count - 1) / (count - 1))[:, None]
        points = (1.0 - t) * x[start] + t * x[end]
        points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
        rows, _ = self.searcher.rows(points.astype(np.float32), self.line)
        return rows

    def _cost(self, distance: np.ndarray) -> np.ndarray:
        return np.maximum(distance, 0.0) ** self.power

    def _bound(self, to_end: np.ndarray, steps: int) -> np.ndarray:
        """Least cost of ``steps`` steps from songs at cosine distance ``to_end`` from B."""
        return steps * (np.maximum(to_end, 0.0) / steps**2) ** self.power

    def find(self, start: int, end: int, count: int) -> list[int]:
        """Rows of a path of ``min(count, len(index))`` songs from row ``start`` to row ``end``,
        no row twice.

        Raises:
            ValueError: ``start == end`` or ``count < 2``.
        """
        if start == end:
            raise ValueError("a path needs two different songs")
        if count < 2:
            raise ValueError(f"a path has at least 2 songs, not {count}")
        x = self.index.embeddings
        count = min(count, len(x))
        if count == 2:
            return [start, end]
        to_end = (1.0 - x @ x[end]).astype(np.float64)
        line = self._line_songs(start, end, count)
        paths = np.array([[start]], dtype=np.int64)
        cost = np.zeros(1)
        cache: dict = {}
        for position in range(1, count - 1):
            left = count - 1 - position  # steps still to take after this one
            k = self.k
            while True:
                nb, dist = self._neighbours(paths[:, -1], k, cache)
                if line is not None:  # bridges: songs near this position's point on the line
                    near = np.broadcast_to(line[position - 1], (len(paths), line.shape[1]))
                    gap = np.maximum(0.0, 1.0 - x[paths[:, -1]] @ x[line[position - 1]].T)
                    nb = np.concatenate([nb, near], axis=1)
                    dist = np.concatenate([dist, gap.astype(np.float32)], axis=1)
                used = (nb[:, :, None] == paths[:, None, :]).any(axis=2) | (nb == end) | (nb < 0)
                score = cost[:, None] + self._cost(dist.astype(np.float64))
                total = score + self._bound(to_end[np.maximum(nb, 0)], left)
                total[used] = np.inf
                if np.isfinite(total).any() or k >= len(x) - 1:
                    break
                k = min(4 * k, len(x) - 1)  # every neighbour used: look further
            flat = np.argsort(total, axis=None, kind="stable")
            flat = flat[np.isfinite(total.ravel()[flat])]
            beam_of, choice = np.unravel_index(flat, total.shape)
            # the best partial path per last song, then the best `beam` of those
            _, first = np.unique(nb[beam_of, choice], return_index=True)
            keep = np.sort(first)[: self.beam]
            beam_of, choice = beam_of[keep], choice[keep]
            paths = np.concatenate([paths[beam_of], nb[beam_of, choice][:, None]], axis=1)
            cost = score[beam_of, choice]
        final = cost + self._cost(to_end[paths[:, -1]])
        best = int(np.argmin(final))
        return [int(r) for r in paths[best]] + [end]


def random_path(n: int, start: int, end: int, count: int, rng: np.random.Generator) -> list[int]:
    """Baseline: ``count - 2`` random other songs between ``start`` and ``end``."""
    others = np.setdiff1d(np.arange(n), [start, end])
    middle = rng.choice(others, min(count, n) - 2, replace=False)
    return [start, *(int(r) for r in middle), end]


def straight_line_path(embeddings: np.ndarray, start: int, end: int, count: int) -> list[int]:
    """Baseline: the unused song nearest each of ``count - 2`` evenly spaced points on the
    straight line from ``start``'s embedding to ``end``'s, in order."""
    x = embeddings
    count = min(count, len(x))
    used = np.zeros(len(x), dtype=bool)
    used[[start, end]] = True
    path = [start]
    for i in range(1, count - 1):
        t = i / (count - 1)
        point = (1.0 - t) * x[start] + t * x[end]
        sims = x @ point
        sims[used] = -np.inf
        row = int(np.argmax(sims))
        used[row] = True
        path.append(row)
    return [*path, end]


def step_distances(embeddings: np.ndarray, path: Sequence[int]) -> np.ndarray:
    """Cosine distance of each step of ``path`` (rows of L2-normalised ``embeddings``)."""
    rows = embeddings[list(path)]
    return np.maximum(0.0, 1.0 - np.sum(rows[:-1] * rows[1:], axis=1))


def path_stats(
    embeddings: np.ndarray,
    path: Sequence[int],
    labels: Sequence[dict[str, set[str]]] | None = None,
    kinds: Sequence[str] = (),
) -> dict[str, Any]:
    """Mean and largest step of ``path``, and per label kind the share of consecutive pairs
    sharing a label (``labels[i]``: the label sets of ``path[i]``)."""
    steps = step_distances(embeddings, path)
    out: dict[str, Any] = {"mean_step": float(steps.mean()), "max_step": float(steps.max())}
    if labels is not None:
        out["continuity"] = {
            kind: float(
                np.mean(
                    [
                        bool(a.get(kind, set()) & b.get(kind, set()))
                        for a, b in zip(labels[:-1], labels[1:], strict=True)
                    ]
                )
            )
            for kind in kinds
        }
    return out
