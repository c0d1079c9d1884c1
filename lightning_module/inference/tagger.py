"""Tag audio with a trained model: the one implementation behind predict_clip and evaluate.

Opens a model through a runner (onnxruntime for ``.onnx`` files and the shipped model; PyTorch
for checkpoints, loaded without executing pickled code), splits long audio into overlapping
windows, runs them in batches and averages. A folder of files shares batches across files while
the next files decode in threads; a timeline keeps one prediction per window. Everything here is
numpy: with an ONNX model, tagging imports neither torch nor Lightning. Formatting and writing
results live in ``output``, plots in ``lightning_module.plots``, fetching Spotify previews in
``datamodules.sources.spotify_preview``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamodules.audio import AudioError, load_audio, window_weights
from datamodules.schema import FEATURE_RANGES
from lightning_module.inference.decoders import DECODERS
from lightning_module.inference.errors import (  # noqa: F401 (re-exported: the public API)
    CheckpointError,
    ModelError,
)
from lightning_module.inference.prediction import DEDICATED, ClipPrediction
from lightning_module.inference.runners import OnnxRunner, Runner
from lightning_module.inference.shipped import default_model  # noqa: F401 (re-exported)
from lightning_module.inference.streaming import (
    MIN_SECONDS,
    Decoded,
    WindowStream,
    _numpy,
    decode_windows,
    decode_worker_init,
    planned_starts,
    tail_threshold,
)
from lightning_module.model.spec import TaggerSpec
from lightning_module.model.tasks import TASKS
from lightning_module.model.tempo_bins import tempo_bins


def __getattr__(name: str) -> Any:
    # Checkpoint loading needs torch: imported only when asked for, so that tagging with the
    # ONNX model never loads it.
    if name in ("load_checkpoint", "load_network"):
        from lightning_module.inference import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Tagger:
    """A trained model ready to tag audio.

    Args:
        model: any :class:`Runner` (an :class:`OnnxRunner`; a ``TorchRunner``), or a
            ``TaggerNet`` (wrapped in a ``TorchRunner`` on ``device``): windowing, batching and
            aggregation are the same for all, in numpy.
        spec: what the model is (labels, feature statistics, input); a checkpoint's saved
            hyperparameters are accepted too and read as a spec.
        device: where a network runs (ignored for a runner).
        batch_size: windows per forward pass.
        overlap: fraction of a window shared by consecutive windows.
        max_windows: clip-level predictions average at most this many windows, evenly spread
            over the file (``None``: all), so an hour-long file costs seconds, not minutes, and
            memory stays bounded; :meth:`timeline` always uses every window.
    """

    def __init__(
        self,
        model: Runner | Any,
        spec: TaggerSpec | Mapping[str, Any],
        device: Any = "cpu",
        batch_size: int = 16,
        overlap: float = 0.5,
        max_windows: int | None = 64,
    ) -> None:
        if hasattr(model, "state_dict"):  # a network: PyTorch runs it
            from lightning_module.inference.torch_runner import TorchRunner

            model = TorchRunner(model, device)
        self.runner: Runner = model
        self.device = getattr(model, "device", device)
        self.net = getattr(self.runner, "net", None)  # the nn.Module, when PyTorch runs it
        self.spec = spec if isinstance(spec, TaggerSpec) else TaggerSpec.from_hparams(spec)
        self.batch_size = batch_size
        self.sample_rate = self.spec.sample_rate
        self.window = self.spec.window_samples
        self.hop = max(int(self.window * (1.0 - overlap)), 1)
        self.max_windows = max_windows
        self.min_tail = tail_threshold(self.hop)
        self._trained = set(self.spec.trained_features)
        self._basis = {k: self.spec.feature_basis(k) for k in self.spec.feature_names}
        self._key_basis = self.spec.key_basis
        self._tempo_bins = tempo_bins(self.spec)
        self._mean = np.array(self.spec.feature_mean, dtype=np.float32)
        self._std = np.array(self.spec.feature_std, dtype=np.float32)
        # A regression head can overshoot; report values inside each feature's valid range.
        inf = float("inf")
        ranges = [FEATURE_RANGES.get(n, (-inf, inf)) for n in self.spec.feature_names]
        self._low = np.array([r[0] for r in ranges], dtype=np.float32)
        self._high = np.array([r[1] for r in ranges], dtype=np.float32)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: Any = "cpu", **kwargs: Any) -> Tagger:
        """A tagger running a Lightning checkpoint with PyTorch (imports torch)."""
        from lightning_module.inference.checkpoint import load_network

        net, spec = load_network(path)
        return cls(net, spec, device=device, **kwargs)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: Any = "cpu", **kwargs: Any) -> Tagger:
        """A tagger running a model exported by ``scripts/export_onnx.py`` with onnxruntime."""
        runner = OnnxRunner(path, device=device)
        return cls(runner, runner.hparams, device=device, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: Any = "cpu", **kwargs: Any) -> Tagger:
        """``from_onnx`` for ``*.onnx``, else ``from_checkpoint``."""
        loader = cls.from_onnx if str(path).lower().endswith(".onnx") else cls.from_checkpoint
        return loader(path, device=device, **kwargs)

    # -- raw outputs ------------------------------------------------------------------------------
    def starts(self, n_samples: int, max_windows: int | None = None) -> list[int]:
        """Window starts (samples) for ``n_samples`` of audio; ``max_windows`` keeps that many,
        evenly spread from the first to the last."""
        return planned_starts(n_samples, self.window, self.hop, max_windows, self.min_tail)

    def cut(self, wave: np.ndarray, starts: Sequence[int]) -> np.ndarray:
        """(len(starts), window) windows of a (samples,) waveform; audio no longer than a window
        is used whole, unpadded (1, samples)."""
        if wave.size <= self.window:
            return wave[None]
        return np.stack([wave[s : s + self.window] for s in starts])

    def windows(
        self, wave: np.ndarray, max_windows: int | None = None
    ) -> tuple[list[int], np.ndarray]:
        """Window starts (samples) and the (n_windows, window) windows of a (samples,) waveform."""
        wave = _numpy(wave)
        starts = self.starts(wave.size, max_windows)
        return starts, self.cut(wave, starts)

    def finish(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw runner outputs → probabilities (softmax / sigmoid) and natural-unit features,
        clipped to their valid range (``FEATURE_RANGES``)."""
        outputs = dict(raw)
        # "tempo": bin probabilities, averaged over windows, then decoded
        for task in TASKS:
            if task.name in outputs and task.activation != "none":
                activate = _softmax if task.activation == "softmax" else _sigmoid
                outputs[task.name] = activate(outputs[task.name])
        if "features" in outputs:
            natural = outputs["features"] * self._std + self._mean
            outputs["features"] = np.clip(natural, self._low, self._high)
        return outputs

    def window_outputs(
        self, wave: np.ndarray, max_windows: int | None = None
    ) -> tuple[list[int], dict[str, np.ndarray]]:
        """Run the windows of a (samples,) waveform; return window starts and per-window outputs.

        ``max_windows`` keeps that many windows, evenly spread from the first to the last.

        Outputs are probabilities for ``genre``/``mood``/``tags``/``genre_tags`` (softmax /
        sigmoid), natural-unit ``features`` and the ``embedding``, each (n_windows, n) on the CPU.
        """
        wave = _numpy(wave)
        starts = self.starts(wave.size, max_windows)
        # Cut one batch at a time: an hour-long timeline never holds every window at once.
        chunks = [
            self.runner(self.cut(wave, starts[i : i + self.batch_size]))
            for i in range(0, len(starts), self.batch_size)
        ]
        return starts, self.finish({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})

    def average(
        self, outputs: dict[str, np.ndarray], starts: Sequence[int], samples: int
    ) -> dict[str, np.ndarray]:
        """The clip-level value of per-window ``outputs`` (each (len(starts), n)): their mean,
        the end-aligned last window weighted by the new audio it adds (:func:`window_weights`),
        so no stretch of the clip counts twice."""
        weights = np.array(window_weights(list(starts), samples, self.window, self.hop))
        weights = (weights / weights.sum()).astype(np.float32)
        return {k: np.tensordot(weights, v, axes=1) for k, v in outputs.items()}

    def _prediction(
        self,
        outputs: dict[str, np.ndarray],
        path: str | None,
        duration: float,
        windows: int,
        start: float = 0.0,
    ) -> ClipPrediction:
        spec = self.spec

        def ranked(key: str, names: Sequence[str]) -> list[tuple[str, float]]:
            if key not in outputs:
                return []
            probs = outputs[key].tolist()
            return sorted(zip(names, probs, strict=True), key=lambda pair: -pair[1])

        features = {}
        if "features" in outputs:
            features = dict(zip(spec.feature_names, outputs["features"].tolist(), strict=True))
        if "tempo" in outputs and self._tempo_bins is not None:
            features["tempo"] = float(self._tempo_bins.decode(outputs["tempo"]))
        # Never a number the model was not trained to produce.
        features = {k: v for k, v in features.items() if k in self._trained}
        classes: dict[str, list[tuple[str, float]]] = {}
        decoded: dict[str, Any] = {}
        basis = {k: self._basis[k] for k in features}
        for task in TASKS:
            if task.name in DEDICATED or task.name not in outputs:
                continue
            if task.decoder is not None:
                decoded.update(DECODERS[task.decoder].decode(outputs[task.name]))
                basis[task.name] = self._key_basis if task.name == "key" else ""
            else:
                classes[task.name] = ranked(task.name, spec.names(task.name))
        return ClipPrediction(
            path=path,
            duration=duration,
            windows=windows,
            genre=ranked("genre", spec.genre_names),
            mood=ranked("mood", spec.mood_names),
            features=features,
            tags=ranked("tags", spec.tag_names),
            start=start,
            feature_basis=basis,
            genre_tags=dict(ranked("genre_tags", spec.genre_tag_names)),
            classes=classes,
            decoded=decoded,
        )

    # -- public API -------------------------------------------------------------------------------
    def predict_waveform(
        self, wave: np.ndarray, path: str | None = None, start: float = 0.0
    ) -> ClipPrediction:
        """Tag a (samples,) float waveform at the model's sample rate: windows averaged."""
        wave = _numpy(wave)
        starts, outputs = self.window_outputs(wave, self.max_windows)
        mean = self.average(outputs, starts, wave.size)
        return self._prediction(mean, path, wave.size / self.sample_rate, len(starts), start)

    def load(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> np.ndarray:
        """Decode ``path`` whole, for this model: a (samples,) float32 waveform at
        ``sample_rate``. Refuses audio shorter than ``MIN_SECONDS`` and digital silence (any
        label the model gave it would be noise). Memory grows with the length (~230 MB per
        hour at 16 kHz); :meth:`predict_file` and :meth:`timeline` stream instead."""
        return load_audio(
            path,
            self.sample_rate,
            offset=offset,
            duration=duration,
            min_duration=MIN_SECONDS,
            allow_silence=False,
        )

    def predict_file(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> ClipPrediction:
        """Decode and tag an audio file (any format :mod:`datamodules.audio` decodes, any rate,
        mono or stereo, any length): the result of :meth:`predict_waveform` on the whole
        decoded file, but decoded block by block (:func:`stream_audio`) and only the windows
        the average needs are kept, so memory does not grow with the length of the file."""
        samples, starts, outputs = self._streamed_outputs(path, offset, duration, self.max_windows)
        mean = self.average(outputs, starts, samples)
        return self._prediction(mean, str(path), samples / self.sample_rate, len(starts), offset)

    def timeline(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> list[ClipPrediction]:
        """One prediction per window of the file, in time order (``start`` in seconds); the
        file is streamed and its windows run as they pass, so only the per-window results (a
        few hundred floats each) are held, not the audio."""
        samples, starts, outputs = self._streamed_outputs(path, offset, duration, None)
        seconds = min(self.window, samples) / self.sample_rate
        return [
            self._prediction(
                {k: v[i] for k, v in outputs.items()},
                str(path),
                seconds,
                1,
                offset + s / self.sample_rate,
            )
            for i, s in enumerate(starts)
        ]

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        offset: float = 0.0,
        duration: float | None = None,
        decode_workers: int = 2,
        decode_processes: int = 0,
    ) -> Iterator[ClipPrediction | AudioError]:
        """Tag many files with one model, in order; yields a prediction, or the AudioError of a
        file that cannot be used (and goes on).

        Windows of consecutive files share batches (a folder of short clips still runs full
        batches), and the next files decode meanwhile: in ``decode_workers`` threads (libsndfile
        and torch release the GIL), or, with ``decode_processes`` > 0, in that many worker
        processes (the model stays in this one; a worker streams its file and sends back only
        the windows the prediction needs, at most ~2 * ``max_windows`` of them). Every forward
        pass has exactly ``batch_size`` windows (the last is padded with silence), so a file's
        result never depends on which files ran beside it: re-running a folder, or part of it,
        gives the same numbers to the last bit. Results are those of :meth:`predict_file`
        (within float rounding).
        """
        jobs: deque[_Job] = deque()
        decoded = self._decode_ahead(paths, offset, duration, decode_workers, decode_processes)
        for path, result in decoded:
            job = _Job(str(path))
            if isinstance(result, AudioError):
                job.error = result
            else:
                job.samples = result.samples
                job.seconds = result.samples / self.sample_rate
                job.starts, job.waiting = result.starts, result.windows
            jobs.append(job)
            while sum(len(j.waiting) for j in jobs) >= self.batch_size:
                self._run_shared_batch(jobs)
            yield from self._pop_finished(jobs, offset)
        while any(len(j.waiting) for j in jobs):
            self._run_shared_batch(jobs)
        yield from self._pop_finished(jobs, offset)

    def _streamed_outputs(
        self,
        path: str | os.PathLike,
        offset: float,
        duration: float | None,
        max_windows: int | None,
    ) -> tuple[int, list[int], dict[str, np.ndarray]]:
        """Stream ``path`` and run the windows a prediction needs as they pass, in batches.

        Returns the length in samples, the window starts (samples, those of
        ``self.starts(samples, max_windows)``) and the finished per-window outputs, each
        (len(starts), n), as :meth:`window_outputs` gives for the whole decoded file.
        """
        stream = WindowStream(
            path, self.sample_rate, self.window, self.hop, max_windows, offset, duration
        )
        raw: dict[int, dict[str, np.ndarray]] = {}
        batch: list[tuple[int, np.ndarray]] = []

        def run() -> None:
            out = self.runner(np.stack([w for _, w in batch]))
            for i, (start, _) in enumerate(batch):
                raw[start] = {k: v[i] for k, v in out.items()}
            batch.clear()

        for start, samples in stream:
            # Only windows of one length share a batch: audio shorter than a window runs whole.
            if batch and (len(batch) == self.batch_size or batch[0][1].size != samples.size):
                run()
            batch.append((start, samples))
        if batch:
            run()
        keys = raw[stream.starts[0]].keys()
        stacked = {k: np.stack([raw[s][k] for s in stream.starts]) for k in keys}
        return stream.samples, stream.starts, self.finish(stacked)

    def _decode_ahead(
        self,
        paths: Iterable[str | os.PathLike],
        offset: float,
        duration: float | None,
        workers: int,
        processes: int = 0,
    ) -> Iterator[tuple[str | os.PathLike, Decoded | AudioError]]:
        """(path, its windows or AudioError) in order, decoding up to ``2 * workers`` files ahead
        in threads, or ``2 * processes`` ahead in worker processes."""
        workers = max(1, processes or workers)
        pool: Executor
        if processes:
            # spawn, not fork: a forked child of a process whose OpenMP/torch threads already
            # ran can deadlock on its first parallel op.
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=decode_worker_init,
            )
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        todo = iter(paths)
        args = (self.sample_rate, self.window, self.hop, self.max_windows, offset, duration)
        ahead: deque[tuple[str | os.PathLike, Future]] = deque()

        def submit() -> None:
            for path in todo:
                ahead.append((path, pool.submit(decode_windows, str(path), *args)))
                return

        try:
            for _ in range(2 * workers):
                submit()
            while ahead:
                path, future = ahead.popleft()
                submit()
                yield path, future.result()
        finally:  # also when the caller stops early: queued files are dropped, not decoded
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_shared_batch(self, jobs: deque[_Job]) -> None:
        """Run up to ``batch_size`` waiting windows, taken from the oldest jobs first, padded to
        exactly ``batch_size`` (a window's output depends, in the last bits, on the size of the
        batch it runs in, never on its neighbours).

        Only windows of one length share a batch: a clip shorter than a window is run whole.
        """
        taken: list[tuple[_Job, int]] = []
        size = 0
        length = next(job.waiting.shape[-1] for job in jobs if len(job.waiting))
        for job in jobs:
            if size == self.batch_size:
                break
            n = min(len(job.waiting), self.batch_size - size)
            if n and job.waiting.shape[-1] == length:
                taken.append((job, n))
                size += n
        windows = [job.waiting[:n] for job, n in taken]
        if size < self.batch_size:
            windows.append(np.zeros((self.batch_size - size, length), dtype=np.float32))
        out = self.runner(np.concatenate(windows))
        first = 0
        for job, n in taken:
            job.done.append({k: v[first : first + n] for k, v in out.items()})
            job.waiting = job.waiting[n:]
            first += n

    def _pop_finished(
        self, jobs: deque[_Job], offset: float
    ) -> Iterator[ClipPrediction | AudioError]:
        while jobs and not len(jobs[0].waiting):
            job = jobs.popleft()
            if job.error is not None:
                yield job.error
                continue
            outputs = self.finish(
                {k: np.concatenate([d[k] for d in job.done]) for k in job.done[0]}
            )
            mean = self.average(outputs, job.starts, job.samples)
            yield self._prediction(mean, job.path, job.seconds, len(job.starts), offset)


@dataclass
class _Job:
    """One file in :meth:`Tagger.predict_files`: windows still to run and outputs so far."""

    path: str
    error: AudioError | None = None
    seconds: float = 0.0
    samples: int = 0
    starts: list[int] = field(default_factory=list)
    waiting: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    done: list[dict[str, np.ndarray]] = field(default_factory=list)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free logistic
