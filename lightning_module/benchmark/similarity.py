"""How well, and how fast, "more like this" works (``scripts/benchmark.py --similarity``).

* **search**: per-query time of the exact search (one matrix product) and of an HNSW graph
  (hnswlib) over libraries of N unit vectors (clustered, like embeddings), the graph's build and
  load times, its recall@10 against the exact answer, and the crossover N from which the graph
  is faster per query; :data:`~lightning_module.library.similarity.ANN_THRESHOLD` comes from it.
* **copies and excerpts**: a generated library where each song (``datamodules.synthetic``)
  appears as an mp3, as that mp3 re-encoded to Ogg Vorbis and as a different 30 s excerpt in
  FLAC; the share of songs whose copy and excerpt both rank in the top 3 of the song's query
  (and each alone).
* **genre agreement**: on labelled real sets (``labels.csv`` with ``audio_path`` and ``genre``),
  the share of each clip's 10 nearest neighbours (same set) that have its genre, against a random
  ranking's expectation; with a manifest, also for the clips of its test split alone.
"""

from __future__ import annotations

import csv
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from datamodules.audio import AudioError, load_audio
from datamodules.synthetic import GENRES, MOODS, render_clip
from lightning_module.library import similarity as sim


def measure_search(
    sizes: tuple[int, ...] = (500, 1000, 2000, 5000, 10000, 20000, 50000),
    dim: int = 128,
    queries: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Exact vs HNSW per query (ms), build (s), load (ms) and recall@10 for each library size."""
    import hnswlib  # noqa: F401 (the optional extra: fail here, before any work, without it)

    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        centers = rng.standard_normal((64, dim)).astype(np.float32)
        x = centers[rng.integers(0, 64, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        entries = [sim.Entry(f"/music/{i}", 0, 0) for i in range(n)]
        index = sim.LibraryIndex(entries, x, {"name": "bench", "embed_dim": dim})
        q = x[rng.integers(0, n, queries)]
        exact = sim.Searcher(index, method="exact")
        start = time.perf_counter()
        for v in q:
            exact.query(v[None], 10)
        exact_ms = (time.perf_counter() - start) / queries * 1e3
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.index"
            start = time.perf_counter()
            graph_file = _save_graph(x, path)
            build_s = time.perf_counter() - start
            index.ann = {"file": graph_file, "count": n}
            index.save(path)
            start = time.perf_counter()
            loaded = sim.LibraryIndex.load(path)
            load_index_ms = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            ann = sim.Searcher(loaded, path, method="ann")
            load_graph_ms = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            for v in q:
                ann.query(v[None], 10)
            ann_ms = (time.perf_counter() - start) / queries * 1e3
            got = ann.query(q, 10)
            want = exact.query(q, 10)
            recall = statistics.mean(
                len({e.entry.path for e in a} & {e.entry.path for e in b}) / 10
                for a, b in zip(got, want, strict=True)
            )
        rows.append(
            {
                "songs": n,
                "exact_ms_per_query": exact_ms,
                "hnsw_ms_per_query": ann_ms,
                "hnsw_build_s": build_s,
                "load_index_ms": load_index_ms,
                "load_graph_ms": load_graph_ms,
                "hnsw_recall_at_10": recall,
            }
        )
    # the smallest size from which on (this and every larger one) the graph is faster per query
    crossover = 0
    for r in reversed(rows):
        if r["hnsw_ms_per_query"] >= r["exact_ms_per_query"]:
            break
        crossover = r["songs"]
    return {"dim": dim, "queries": queries, "rows": rows, "crossover_songs": crossover}


def _save_graph(x: np.ndarray, index_path: Path) -> str:
    import hnswlib

    graph = hnswlib.Index(space="cosine", dim=x.shape[1])
    graph.init_index(max_elements=len(x), ef_construction=sim.HNSW_EF_CONSTRUCTION, M=sim.HNSW_M)
    graph.add_items(x, np.arange(len(x)))
    name = f"{index_path.name}.bench.hnsw"
    graph.save_index(str(index_path.parent / name))
    return name


def _embed_all(tagger: Any, paths: list[str]) -> tuple[np.ndarray, list[int]]:
    """Embeddings of the files that decode, and the positions of those files."""
    vectors, kept = [], []
    for i, path in enumerate(paths):
        try:
            vectors.append(sim.embed_file(tagger, path)[0])
            kept.append(i)
        except AudioError:
            continue
    return np.stack(vectors), kept


def copy_and_excerpt_retrieval(
    tagger: Any, work_dir: Path, songs: int = 24, seconds: float = 70.0, seed: int = 0
) -> dict[str, Any]:
    """Each song as mp3 (whole), as that mp3 re-encoded to Ogg Vorbis (whole) and as a 30 s
    excerpt from its second half (FLAC); query with the mp3, look for the other two in the
    top 3."""
    work_dir = Path(work_dir) / "copies"
    work_dir.mkdir(parents=True, exist_ok=True)
    sr = 22050
    rng = np.random.default_rng(seed)
    pairs = [(g, m) for g in GENRES for m in MOODS]
    originals, copies, excerpts = [], [], []
    for i in range(songs):
        genre, mood = pairs[i % len(pairs)]
        x, _ = render_clip(genre, mood, seconds, sr, rng)
        mp3 = work_dir / f"song{i:03d}.mp3"
        sf.write(mp3, x, sr, format="MP3")
        decoded = load_audio(mp3, sr)  # a real transcode: mp3 → PCM → Vorbis
        ogg = work_dir / f"song{i:03d}_copy.ogg"
        sf.write(ogg, decoded, sr, format="OGG", subtype="VORBIS")
        start = int((seconds - 30.0) * sr)
        flac = work_dir / f"song{i:03d}_excerpt.flac"
        sf.write(flac, x[start : start + 30 * sr], sr)
        originals.append(str(mp3))
        copies.append(str(ogg))
        excerpts.append(str(flac))
    paths = originals + copies + excerpts
    vectors, kept = _embed_all(tagger, paths)
    if len(kept) != len(paths):
        raise AudioError(f"{work_dir}: {len(paths) - len(kept)} generated file(s) did not decode")
    entries = [sim.Entry(p, 0, 0) for p in paths]
    index = sim.LibraryIndex(entries, vectors, {"name": "bench"})
    found = sim.Searcher(index, method="exact").query(vectors[:songs], 3, list(range(songs)))
    both = copy_hit = excerpt_hit = 0
    for i, neighbours in enumerate(found):
        top = {n.entry.path for n in neighbours}
        copy_hit += copies[i] in top
        excerpt_hit += excerpts[i] in top
        both += copies[i] in top and excerpts[i] in top
    return {
        "songs": songs,
        "song_seconds": seconds,
        "both_in_top3": both / songs,
        "copy_in_top3": copy_hit / songs,
        "excerpt_in_top3": excerpt_hit / songs,
        "random_both_in_top3": 6 / ((3 * songs - 1) * (3 * songs - 2)),
    }


def read_labels(labels_csv: Path) -> list[tuple[str, str]]:
    """(absolute audio path, genre) of a shared set's ``labels.csv``."""
    root = Path(labels_csv).parent
    with open(labels_csv, newline="", encoding="utf-8") as f:
        return [
            (str((root / row["audio_path"]).resolve()), row["genre"])
            for row in csv.DictReader(f)
            if row.get("genre")
        ]


def genre_agreement(
    tagger: Any, labels_csv: Path, k: int = 10, manifest: Path | None = None
) -> dict[str, Any]:
    """Share of each clip's ``k`` nearest neighbours (same set) sharing its genre, and the
    expectation under a random ranking; with ``manifest`` (audio_path, split), also for the
    queries of its test split (their neighbours come from every split)."""
    rows = read_labels(labels_csv)
    vectors, kept = _embed_all(tagger, [p for p, _ in rows])
    rows = [rows[i] for i in kept]
    genres = [g for _, g in rows]
    index = sim.LibraryIndex([sim.Entry(p, 0, 0) for p, _ in rows], vectors, {"name": "bench"})
    found = sim.Searcher(index, method="exact").query(vectors, k, list(range(len(rows))))
    by_path = {p: g for p, g in rows}
    agreement = [
        sum(by_path[n.entry.path] == genres[i] for n in neighbours) / k
        for i, neighbours in enumerate(found)
    ]
    n = len(rows)
    counts = {g: genres.count(g) for g in set(genres)}
    random_rate = sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))
    result: dict[str, Any] = {
        "set": str(Path(labels_csv).parent.name),
        "clips": n,
        "genres": counts,
        "k": k,
        "agreement": statistics.mean(agreement),
        "random": random_rate,
    }
    if manifest is not None:
        with open(manifest, newline="", encoding="utf-8") as f:
            split = {
                os.path.realpath(r["audio_path"]): r.get("split", "") for r in csv.DictReader(f)
            }
        test = [a for (p, _), a in zip(rows, agreement, strict=True) if split.get(p) == "test"]
        if test:
            result["test_queries"] = len(test)
            result["test_agreement"] = statistics.mean(test)
    return result


def format_similarity_report(report: dict[str, Any]) -> str:
    """The numbers as small tables."""
    lines = []
    search = report.get("search")
    if search:
        lines.append(f"search, {search['dim']}-d unit vectors, ms per query (k=10)")
        lines.append(
            f"  {'songs':>7}  {'exact':>7}  {'hnsw':>7}  {'build s':>7}  {'load ms':>7}  "
            f"{'graph ms':>8}  {'recall':>6}"
        )
        for r in search["rows"]:
            lines.append(
                f"  {r['songs']:>7}  {r['exact_ms_per_query']:7.3f}  {r['hnsw_ms_per_query']:7.3f}"
                f"  {r['hnsw_build_s']:7.2f}  {r['load_index_ms']:7.1f}  {r['load_graph_ms']:8.1f}"
                f"  {r['hnsw_recall_at_10']:6.3f}"
            )
        lines.append(f"  HNSW faster per query from {search['crossover_songs']} songs")
    copies = report.get("copies")
    if copies:
        lines.append(
            f"copies and excerpts, {copies['songs']} songs of {copies['song_seconds']:g} s: "
            f"copy and excerpt both in top 3 {copies['both_in_top3']:.2f} (copy "
            f"{copies['copy_in_top3']:.2f}, excerpt {copies['excerpt_in_top3']:.2f}; random "
            f"{copies['random_both_in_top3']:.4f})"
        )
    for g in report.get("genre", []):
        test = ""
        if "test_agreement" in g:
            test = f"; test-split queries ({g['test_queries']}) {g['test_agreement']:.3f}"
        lines.append(
            f"genre agreement of the top {g['k']}, {g['set']} ({g['clips']} clips): "
            f"{g['agreement']:.3f} vs random {g['random']:.3f}{test}"
        )
    return "\n".join(lines)
