"""The library benchmarks behind ``scripts/benchmark.py --tags`` and ``--similarity``: tag
writing cost per file (:mod:`.tags`), search speed, copy/excerpt retrieval and genre agreement
(:mod:`.similarity`). Prints the tables and writes ``<work_dir>/library_benchmark.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datamodules.io import write_json_atomic

#: The labelled real sets the genre agreement uses when they are there (../shared/data).
SHARED_DATA = Path(os.environ.get("SHARED_DATA", Path(__file__).resolve().parents[3] / "shared"))


def run_library_benchmarks(
    work_dir: str | os.PathLike,
    tags: bool = True,
    similarity: bool = True,
    checkpoint: str | os.PathLike | None = None,
    tag_files: int = 200,
    tag_seconds: float = 30.0,
    manifest: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Run the chosen benchmarks; retrieval and genre agreement need a ``checkpoint`` (the
    genre agreement also the shared GTZAN-3 / Emotify sets; ``manifest`` adds test-split rows)."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    if tags:
        from lightning_module.benchmark.tags import format_tags_table, run_tags_benchmark

        report["tags"] = run_tags_benchmark(work_dir, tag_files, tag_seconds)
        print(format_tags_table(report["tags"]), flush=True)
    if similarity:
        from lightning_module.benchmark import similarity as bench

        found: dict[str, Any] = {}
        try:
            found["search"] = bench.measure_search()
        except ImportError:
            print("search: hnswlib is not installed (pip install -e '.[library]')")
        if checkpoint is not None:
            from lightning_module.inference.tagger import Tagger

            tagger = Tagger.from_file(checkpoint)
            found["copies"] = bench.copy_and_excerpt_retrieval(tagger, work_dir)
            found["genre"] = []
            for name in ("gtzan3", "emotify"):
                labels = SHARED_DATA / "data" / name / "labels.csv"
                if labels.is_file():
                    found["genre"].append(
                        bench.genre_agreement(
                            tagger, labels, manifest=Path(manifest) if manifest else None
                        )
                    )
            found["checkpoint"] = str(checkpoint)
        report["similarity"] = found
        print(bench.format_similarity_report(found), flush=True)
    out = write_json_atomic(work_dir / "library_benchmark.json", report)
    print(f"wrote {out}")
    return report
