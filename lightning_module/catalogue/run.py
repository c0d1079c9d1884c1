"""A catalogue run: inputs → resume → the Ray pipeline → Parquet parts, with progress and the
folder run's closing summary (:class:`~lightning_module.inference.folder_table.LibraryReport`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lightning_module.catalogue.inputs import DEFAULT_PATH_COLUMN, CatalogueError, read_input
from lightning_module.catalogue.pipeline import (
    REASON,
    ModelSpec,
    Scale,
    Windowing,
    connect,
    run_pipeline,
)
from lightning_module.catalogue.table import Output, expected_state
from lightning_module.console import write_line
from lightning_module.inference.folder_table import LibraryReport, model_file_record
from lightning_module.inference.listing import _unknown_format
from lightning_module.inference.tagger import Tagger


@dataclass
class CatalogueRun:
    """What to tag and how (the command's options; see ``scripts/tag_catalogue.py --help``)."""

    source: str | os.PathLike
    out: str | os.PathLike
    model: str | os.PathLike
    path_column: str = DEFAULT_PATH_COLUMN
    offset: float = 0.0
    duration: float | None = None
    batch_size: int = 16
    overlap: float = 0.5
    device: str = "cpu"
    address: str | None = None
    #: CPUs of the Ray started on this machine when no cluster is named (None: all)
    num_cpus: int | None = None
    scale: Scale = field(default_factory=Scale)
    #: onnxruntime threads per actor (None: ``scale.cpus_per_actor``, at least 1)
    actor_threads: int | None = None
    force: bool = False
    csv: bool = False
    part_rows: int = 1000
    part_seconds: float = 60.0


def tag_catalogue(
    run: CatalogueRun, errors: IO[str] | None = None, progress: bool = True
) -> LibraryReport:
    """Tag every audio file ``run.source`` names into the output folder ``run.out``.

    Returns:
        What was tagged, kept from an earlier run, dropped (stale rows), skipped (with reasons)
        and left as not audio; ``summary(out)`` is the closing line.

    Raises:
        CatalogueError: an input, column or output that cannot be used (one line).
        ModelError: the model cannot be opened.
    """
    from tqdm.auto import tqdm

    tagger = Tagger.from_file(
        run.model, device="cpu", batch_size=run.batch_size, overlap=run.overlap
    )  # here for its spec and windowing only; the actors load their own
    out = Path(run.out)
    listing = read_input(run.source, run.path_column, exclude=[out])
    if not listing.audio and not listing.unknown:
        raise CatalogueError(f"{run.source}: no audio files")
    report = LibraryReport(not_audio=dict(listing.not_audio))

    def skip(path: str, reason: str) -> None:
        report.skipped.append((path, reason))
        if errors is not None:
            write_line(f"skipped: {path}: {reason}", errors)

    for path, reason in listing.unreadable:
        skip(str(path), reason)
    for path in listing.unknown:
        skip(str(path), _unknown_format(path).removeprefix(f"{path}: "))
    identities: dict[str, tuple[int, int]] = {}
    for path in listing.audio:
        try:
            st = path.stat()
        except FileNotFoundError:
            skip(str(path), "file not found")
            continue
        except OSError as err:
            skip(str(path), f"cannot read ({err.strerror})")
            continue
        identities[str(path)] = (st.st_size, st.st_mtime_ns)

    identity = model_file_record(run.model)
    windowing = Windowing(
        tagger.sample_rate, tagger.window, tagger.hop, tagger.max_windows, run.offset, run.duration
    )
    settings = {
        "offset": float(run.offset),
        "duration": None if run.duration is None else float(run.duration),
        "sample_rate": tagger.sample_rate,
        "window_samples": tagger.window,
        "hop_samples": tagger.hop,
        "max_windows": tagger.max_windows,
    }
    output = Output(out, tagger.spec, expected_state(identity, settings), run.force,
                    run.part_rows, run.part_seconds)  # fmt: skip
    kept, report.dropped = output.open(identities)
    report.kept = len(kept)
    todo = [
        {"path": p, "file_bytes": size, "file_mtime_ns": mtime}
        for p, (size, mtime) in identities.items()
        if p not in kept
    ]
    model = ModelSpec(
        path=str(run.model),
        sha256=identity["sha256"],
        device=run.device,
        batch_size=run.batch_size,
        overlap=run.overlap,
        threads=run.actor_threads or max(1, round(run.scale.cpus_per_actor)),
    )
    started = connect(run.address, run.num_cpus) if todo else False
    bar = tqdm(total=len(todo), unit="file", disable=not progress, leave=False)
    try:
        for batch in run_pipeline(todo, windowing, model, run.scale):
            reasons = batch.column(REASON).to_pylist()
            for path, reason in zip(batch.column("path").to_pylist(), reasons, strict=True):
                if reason is not None:
                    skip(path, reason)
            tagged = batch.filter([r is None for r in reasons]).drop_columns([REASON])
            output.add(tagged)
            report.tagged += tagged.num_rows
            bar.update(batch.num_rows)
    finally:
        output.flush()  # rows that arrived are whole: keep them, even when the run fails
        bar.close()
        if started:
            import ray

            ray.shutdown()
    output.write_skipped(report.skipped, csv_too=run.csv)
    if run.csv:
        output.write_csv()
    return report
