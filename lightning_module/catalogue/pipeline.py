"""The Ray Data pipeline: files → decoded windows (CPU tasks) → rows (the model, in actors).

::

    from_items([{path, file_bytes, file_mtime_ns}])          blocks of ``files_per_block`` files
      .map_batches(decode_block)          CPU tasks: inference.streaming.decode_windows per file
      .map_batches(TagActor, ...)         an actor pool; each actor loads the model once and runs
                                          the windows of ``files_per_call`` files per call through
                                          Tagger.predict_decoded (full, padded batches)
      .iter_batches()                     the driver: rows into Parquet parts, skips, progress

A decoded file travels as its window starts and its float32 windows as bytes (at most
``max_windows`` windows: ~24 MB for a 64-window file at 16 kHz, 6 s windows), so an hour-long
file costs what a 3-minute one does. The model's answers are bit-identical to the folder run's:
every forward pass has exactly ``batch_size`` windows, whichever files share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamodules.audio import AudioError
from lightning_module.catalogue.table import row_schema
from lightning_module.inference.folder_table import IDENTITY_COLUMNS, model_file_record
from lightning_module.inference.formats.csv_rows import prediction_record
from lightning_module.inference.streaming import Decoded, decode_windows

#: Columns of a decoded file between the two stages.
DECODED_COLUMNS = ("path", *IDENTITY_COLUMNS, "error", "samples", "starts", "windows")
#: The column the actors add for a file they could not tag (null when tagged).
REASON = "skip_reason"


@dataclass(frozen=True)
class Windowing:
    """How the decode tasks cut a file (the model's, from its Tagger): sample rate (Hz), window
    and hop (samples), ``max_windows`` per file, and the slice [offset, offset + duration) s."""

    sample_rate: int
    window: int
    hop: int
    max_windows: int | None
    offset: float = 0.0
    duration: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What an actor loads: the model file (readable on every node), its sha256 (checked, so
    every actor runs the model the output's state names), and the Tagger's settings."""

    path: str
    sha256: str
    device: str = "cpu"
    batch_size: int = 16
    overlap: float = 0.5
    threads: int | None = None


def decode_block(batch: Any, windowing: Windowing) -> Any:
    """A Ray task: each file of ``batch`` (a ``pyarrow.Table`` of path, file_bytes,
    file_mtime_ns) decoded into its window starts and windows (bytes), or its error."""
    import pyarrow as pa

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the tasks are the parallelism
    rows = []
    for item in batch.to_pylist():
        row = {**item, "error": None, "samples": 0, "starts": None, "windows": None}
        result = _decode(item["path"], windowing)
        if isinstance(result, AudioError):
            row["error"] = str(result)
        else:
            row["samples"] = result.samples
            row["starts"] = np.asarray(result.starts, dtype=np.int64).tobytes()
            row["windows"] = np.ascontiguousarray(result.windows, dtype=np.float32).tobytes()
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=_decoded_schema())


def _decode(path: str, w: Windowing) -> Decoded | AudioError:
    try:
        return decode_windows(path, w.sample_rate, w.window, w.hop, w.max_windows, w.offset,
                              w.duration)  # fmt: skip
    except AudioError as err:
        return err
    except MemoryError:
        raise
    except Exception as err:  # a decoder bug must not stop a catalogue: the file is skipped
        return AudioError(f"{path}: cannot decode ({type(err).__name__}: {err})".split("\n")[0])


def decode_memory(w: Windowing) -> int:
    """Bytes one file's decoding may hold: 2 copies of ``max_windows`` float32 windows (or of
    128 windows when uncapped) plus :data:`DECODER_BYTES`."""
    return 2 * 4 * w.window * (w.max_windows or 128) + DECODER_BYTES


#: Decoder state and one streamed block of a file (generous: a 10 s stereo 96 kHz block).
DECODER_BYTES = 64 << 20


def _decoded_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            *((c, pa.int64()) for c in IDENTITY_COLUMNS),
            ("error", pa.string()),
            ("samples", pa.int64()),
            ("starts", pa.large_binary()),
            ("windows", pa.large_binary()),
        ]
    )


class TagActor:
    """The model in a Ray actor: loaded once, then called with batches of decoded files; returns
    one row per file (:func:`~.table.row_schema` plus :data:`REASON`)."""

    def __init__(self, model: ModelSpec, offset: float = 0.0) -> None:
        from lightning_module.inference.runners import OnnxRunner
        from lightning_module.inference.tagger import Tagger

        sha = model_file_record(model.path)["sha256"]
        if sha != model.sha256:
            raise RuntimeError(
                f"{model.path}: on node {os.uname().nodename} has sha256 {sha[:12]}, not "
                f"{model.sha256[:12]}: every node must hold the same model file"
            )
        settings = {"batch_size": model.batch_size, "overlap": model.overlap}
        if model.path.lower().endswith(".onnx"):  # torch-free; threads: the actor's CPUs
            runner = OnnxRunner(model.path, device=model.device, threads=model.threads)
            self.tagger = Tagger(runner, runner.hparams, **settings)
        else:
            self.tagger = Tagger.from_file(model.path, device=model.device, **settings)
        self.offset = offset
        self.schema = row_schema(self.tagger.spec)
        import pyarrow as pa

        self.out_schema = self.schema.append(pa.field(REASON, pa.string()))

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        items = batch.to_pylist()
        results = self.tagger.predict_decoded(self._decoded(items), self.offset)
        rows = []
        for item, result in zip(items, results, strict=True):
            identity = {c: item[c] for c in IDENTITY_COLUMNS}
            if isinstance(result, AudioError):
                path = item["path"]
                text = str(result)
                reason = text[len(path) + 2 :] if text.startswith(f"{path}: ") else text
                rows.append({"path": path, **identity, REASON: reason})
            else:
                rows.append({**prediction_record(result), **identity, REASON: None})
        return pa.Table.from_pylist(rows, schema=self.out_schema)

    def _decoded(self, items: list[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
        for item in items:
            if item["error"] is not None:
                yield item["path"], AudioError(item["error"])
                continue
            starts = np.frombuffer(item["starts"], dtype=np.int64).tolist()
            windows = np.frombuffer(item["windows"], dtype=np.float32).reshape(len(starts), -1)
            yield item["path"], Decoded(item["samples"], starts, windows)


@dataclass(frozen=True)
class Scale:
    """How the work spreads: ``actors`` model actors, each reserving ``cpus_per_actor`` CPUs and
    ``gpus_per_actor`` GPUs (fractions share one); decode tasks reserve ``cpus_per_task`` CPUs
    each and read ``files_per_block`` files; an actor call tags ``files_per_call`` files.

    Reservations are Ray's bookkeeping, not limits: on CPUs alone the model costs about twice
    what decoding does (docs/scale.md), so half a CPU each for an actor and a task, one actor
    per CPU, keeps every core busy with both."""

    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    cpus_per_task: float = 1.0
    files_per_block: int = 4
    files_per_call: int = 16


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or start Ray on this machine
    with ``num_cpus`` CPUs; returns whether this call started it (then the caller shuts it down).
    A process that already joined one keeps it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray's own notices (token auth, "execution finished") are not the user's business here;
    # its errors still show.
    # log_to_driver off: the workers' stderr (decoders' notes about damaged frames) stays in
    # Ray's log files; a file's problem reaches the user as its skip reason, a failed task as
    # the exception Ray Data raises here.
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": "ERROR",
        "log_to_driver": False,
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    return True


def run_pipeline(
    items: list[dict[str, Any]], windowing: Windowing, model: ModelSpec, scale: Scale
) -> Iterator[Any]:
    """The rows of ``items`` (path, file_bytes, file_mtime_ns), as ``pyarrow.Table`` batches
    in the order they finish: :func:`~.table.row_schema` columns plus :data:`REASON`."""
    if not items:
        return
    # Ray Data's notices ("execution finished in ...") are not for this command's user; read
    # when Ray Data (re)configures its loggers, at import and for each dataset.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the run draws one bar of its own, in files
    context.print_on_execution_start = False
    blocks = max(1, -(-len(items) // scale.files_per_block))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        decode_block,
        batch_format="pyarrow",
        batch_size=None,  # one block per task
        fn_kwargs={"windowing": windowing},
        num_cpus=scale.cpus_per_task,
        # What a task holds at worst: its files' windows twice (kept, then as bytes) plus the
        # decoder's blocks. Asking for it also keeps Ray from fusing decoding into the model
        # actors (it fuses stages whose resource requests are identical).
        memory=scale.files_per_block * decode_memory(windowing),
    )
    ds = ds.map_batches(
        TagActor,
        batch_format="pyarrow",
        batch_size=scale.files_per_call,
        fn_constructor_kwargs={"model": model, "offset": windowing.offset},
        compute=ray.data.ActorPoolStrategy(size=scale.actors),
        num_cpus=scale.cpus_per_actor,
        num_gpus=scale.gpus_per_actor,
    )
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
