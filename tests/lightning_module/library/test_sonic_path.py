"""Path playlists: from A to B, no song twice, the count asked for, and smoother than the
straight-line and random baselines on songs lying on a curve."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_module.library import similarity as sim
from lightning_module.library.sonic_path import (
    PathSearch,
    path_stats,
    random_path,
    straight_line_path,
)
from tests.lightning_module.library.tiny_index import ring_embeddings


def search_over(x: np.ndarray, **options) -> PathSearch:
    index = sim.LibraryIndex([sim.Entry(f"/m/{i}", 0, 0) for i in range(len(x))], x, {})
    return PathSearch(index, sim.Searcher(index, method="exact"), **options)


@pytest.mark.parametrize("count", [2, 3, 10, 40, 60, 500])
def test_path_runs_from_a_to_b_without_repeats(count: int) -> None:
    search = search_over(ring_embeddings(60))
    path = search.find(5, 35, count)
    assert path[0] == 5 and path[-1] == 35
    assert len(path) == min(count, 60) == len(set(path))  # every song at most once


def test_path_follows_the_curve_where_the_straight_line_jumps() -> None:
    x = ring_embeddings(80)
    search = search_over(x)
    rng = np.random.default_rng(0)
    ours, line, rand = [], [], []
    for a, b in [(0, 40), (10, 45), (70, 25), (3, 30)]:
        ours.append(path_stats(x, search.find(a, b, 12))["max_step"])
        line.append(path_stats(x, straight_line_path(x, a, b, 12))["max_step"])
        rand.append(path_stats(x, random_path(80, a, b, 12, rng))["max_step"])
    # half the ring in 11 steps: each about 4 neighbours apart; the chord's midpoints have no
    # songs near them, so the line baseline jumps, and random order jumps everywhere
    assert max(ours) < 0.5 * min(line)
    assert max(ours) < 0.5 * min(rand)


def test_bad_requests_are_value_errors() -> None:
    search = search_over(ring_embeddings(10))
    with pytest.raises(ValueError, match="two different"):
        search.find(3, 3, 5)
    with pytest.raises(ValueError, match="at least 2"):
        search.find(3, 4, 1)
