"""How smooth the path playlists are (``scripts/benchmark.py --paths``).

Two labelled pools of real clips from ``../shared/data``, each embedded once into a library index
(kept in the work folder and reused while the model and the clips are the same):

* ``gtzan``: GTZAN-3 and GTZAN-7 together (278 clips, 10 genres); label: the genre.
* ``mood4q``: 300 clips of the 4Q set (75 per quadrant, a fixed draw); labels: the mood
  quadrant, and the AllMusic genres (several per clip: a pair "continues" when it shares one).

For random (A, B) pairs of each pool, a playlist of ``count`` songs from A to B is made by each
method of :data:`METHODS` (ours and the baselines), and scored by
:func:`~lightning_module.library.sonic_path.path_stats`: mean and largest step (cosine
distance between consecutive songs) and the share of consecutive pairs with the same label.
"""

from __future__ import annotations

import csv
import random
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datamodules.audio import AudioError
from lightning_module.library import similarity as sim
from lightning_module.library.sonic_path import (
    PathSearch,
    path_stats,
    random_path,
    straight_line_path,
)

#: 4Q clips per quadrant in the ``mood4q`` pool.
MOOD4Q_PER_QUADRANT = 75


def _rows(labels_csv: Path) -> list[dict[str, str]]:
    with open(labels_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["audio_path"] = str((labels_csv.parent / row["audio_path"]).resolve())
    return rows


def pools(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    """``{pool: [{"path": ..., "labels": {name: set of labels}}]}`` for the pools whose sets
    are in ``shared_data`` (the folder holding ``gtzan3/``, ``gtzan7/``, ``mood4q/``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    gtzan = []
    for name in ("gtzan3", "gtzan7"):
        labels = shared_data / name / "labels.csv"
        if labels.is_file():
            gtzan += [
                {"path": r["audio_path"], "labels": {"genre": {r["genre"]}}} for r in _rows(labels)
            ]
    if gtzan:
        out["gtzan"] = gtzan
    labels = shared_data / "mood4q" / "labels.csv"
    if labels.is_file():
        rows = sorted(_rows(labels), key=lambda r: r["track_id"])
        random.Random(0).shuffle(rows)
        clips = []
        for quadrant in ("Q1", "Q2", "Q3", "Q4"):
            chosen = [r for r in rows if r["quadrant"] == quadrant][:MOOD4Q_PER_QUADRANT]
            clips += [
                {
                    "path": r["audio_path"],
                    "labels": {
                        "mood": {r["mood"]},
                        "allmusic genre": {
                            g.strip() for g in r["allmusic_genres"].split(";") if g.strip()
                        },
                    },
                }
                for r in chosen
            ]
        out["mood4q"] = clips
    return out


def pool_index(
    tagger: Any, model: dict[str, Any], paths: Sequence[str], index_path: Path
) -> sim.LibraryIndex:
    """The index of ``paths`` at ``index_path``: reused when it holds exactly these files made
    by ``model``, else every file is embedded (those that fail to decode are left out)."""
    if index_path.is_file():
        index = sim.LibraryIndex.load(index_path)
        if index.model.get("name") == model.get("name") and [e.path for e in index.entries] == [
            str(p) for p in paths
        ]:
            return index
    entries, vectors = [], []
    for path in paths:
        try:
            vector, tags = sim.embed_file(tagger, path)
        except AudioError:
            continue
        entries.append(sim.Entry(str(path), 0, 0, tags))
        vectors.append(vector)
    index = sim.LibraryIndex(entries, np.stack(vectors), dict(model))
    index.save(index_path)
    return index


def _ours(index: sim.LibraryIndex, **options: Any) -> Callable:
    search = PathSearch(index, sim.Searcher(index, method="exact"), **options)
    return lambda a, b, count, rng: search.find(a, b, count)


#: The methods compared: name → factory(index) → fn(a, b, count, rng) → rows.
METHODS: dict[str, Callable[[sim.LibraryIndex], Callable]] = {
    "random order": lambda index: lambda a, b, n, rng: random_path(len(index), a, b, n, rng),
    "straight line": lambda index: (
        lambda a, b, n, rng: straight_line_path(index.embeddings, a, b, n)
    ),
    "beam, neighbours, sum of steps": lambda index: _ours(index, power=1.0, line=0),
    "beam, neighbours, sum of squares": lambda index: _ours(index, power=2.0, line=0),
    "beam, + line, sum of steps": lambda index: _ours(index, power=1.0),
    "beam, + line, sum of squares (ours)": lambda index: _ours(index, power=2.0),
}


def path_quality(
    index: sim.LibraryIndex,
    labels: dict[str, dict[str, set[str]]],
    count: int = 10,
    pairs: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Each method's mean over ``pairs`` random (A, B) pairs of: mean step, largest step,
    label continuity per label kind; and the largest step over all paths."""
    rng = np.random.default_rng(seed)
    n = len(index)
    chosen = []
    while len(chosen) < pairs:
        a, b = (int(x) for x in rng.choice(n, 2, replace=False))
        chosen.append((a, b))
    kinds = sorted({k for entry in labels.values() for k in entry})
    rows = []
    for name, factory in METHODS.items():
        method = factory(index)
        method_rng = np.random.default_rng(seed + 1)
        stats = []
        for a, b in chosen:
            path = method(a, b, count, method_rng)
            assert path[0] == a and path[-1] == b and len(set(path)) == len(path) == count
            tags = [labels[index.entries[i].path] for i in path]
            stats.append(path_stats(index.embeddings, path, tags, kinds))
        rows.append(
            {
                "method": name,
                "mean_step": statistics.mean(s["mean_step"] for s in stats),
                "mean_max_step": statistics.mean(s["max_step"] for s in stats),
                "max_step": max(s["max_step"] for s in stats),
                "continuity": {
                    k: statistics.mean(s["continuity"][k] for s in stats) for k in kinds
                },
            }
        )
    return {"songs": n, "count": count, "pairs": pairs, "rows": rows}


def run_paths_benchmark(
    checkpoint: str | Path | None,
    work_dir: Path,
    shared_data: Path,
    counts: Sequence[int] = (10, 25),
    pairs: int = 200,
) -> dict[str, Any]:
    """Embed the pools (once) with ``checkpoint`` (default: the shipped model) and measure."""
    from lightning_module.inference.tagger import Tagger, default_model

    model_path = str(checkpoint or default_model())
    tagger = Tagger.from_file(model_path)
    model = sim.model_info(model_path, tagger)
    report: dict[str, Any] = {"model": model["name"], "pools": []}
    for name, clips in pools(Path(shared_data)).items():
        index = pool_index(tagger, model, [c["path"] for c in clips], work_dir / f"{name}.index")
        labels = {c["path"]: c["labels"] for c in clips}
        for count in counts:
            found = path_quality(index, labels, count, pairs)
            report["pools"].append({"pool": name, **found})
    return report


def format_paths_report(report: dict[str, Any]) -> str:
    """One table per pool and count."""
    lines = [f"path playlists, model {report['model']}"]
    for pool in report["pools"]:
        kinds = list(pool["rows"][0]["continuity"])
        lines.append(
            f"{pool['pool']}: {pool['songs']} songs, {pool['pairs']} random (A, B) pairs, "
            f"{pool['count']} songs per path (cosine distance per step)"
        )
        head = "".join(f"  {k + ' cont.':>20}" for k in kinds)
        lines.append(f"  {'method':<34}  {'mean step':>9}  {'mean max':>8}  {'max':>6}{head}")
        for r in pool["rows"]:
            cont = "".join(f"  {r['continuity'][k]:>20.3f}" for k in kinds)
            lines.append(
                f"  {r['method']:<34}  {r['mean_step']:>9.4f}  {r['mean_max_step']:>8.4f}  "
                f"{r['max_step']:>6.4f}{cont}"
            )
    return "\n".join(lines)


def run_paths_main(work_dir: str | Path, checkpoint: str | Path | None = None) -> int:
    """``scripts/benchmark.py --paths``: measure, print, write the JSON in ``work_dir``."""
    from datamodules.io import write_json_atomic
    from lightning_module.benchmark.tags_and_similarity import SHARED_DATA

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    shared = SHARED_DATA / "data"
    if not shared.is_dir():
        print(f"error: {shared}: no shared data (set SHARED_DATA)")
        return 2
    report = run_paths_benchmark(checkpoint, work_dir, shared)
    print(format_paths_report(report), flush=True)
    print(f"wrote {write_json_atomic(work_dir / 'paths_benchmark.json', report)}")
    return 0
