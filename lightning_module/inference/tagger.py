"""Tag audio with a trained model: the one implementation behind predict_clip and evaluate.

Loads the checkpoint without executing pickled code (``torch.load(weights_only=True)``), rebuilds
the pure ``nn.Module`` from the saved hyperparameters (or opens an exported ``.onnx`` file: see
``runners``), splits long audio into overlapping windows, runs them in batches and averages. A
folder of files shares batches across files while the next files decode in threads; a timeline
keeps one prediction per window. Imports neither Lightning, TensorBoard nor pandas, so a cold
start costs little more than importing torch. Formatting and writing results live in ``output``,
plots in ``lightning_module.plots``, fetching Spotify previews in
``datamodules.sources.spotify_preview``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from datamodules.audio import AudioError, load_audio, window_starts
from datamodules.schema import FEATURE_RANGES, spread_evenly
from lightning_module.inference.checkpoint import (  # noqa: F401 (re-exported: the public API)
    CheckpointError,
    ModelError,
    find_checkpoint,
    load_checkpoint,
    load_network,
)
from lightning_module.inference.runners import OnnxRunner, Runner, TorchRunner
from lightning_module.model.network import TaggerNet
from lightning_module.model.spec import TaggerSpec

#: Shortest audio we tag, in seconds; shorter clips carry too little music to say anything.
MIN_SECONDS = 1.0


@dataclass
class ClipPrediction:
    """What the model says about one clip (or one window of it).

    ``genre``/``mood``/``tags`` are (name, probability) pairs, most probable first; ``features``
    maps each audio feature to its value in natural units (tempo in BPM, loudness in dB, rest 0-1).
    """

    path: str | None
    duration: float  # seconds of audio tagged
    windows: int
    genre: list[tuple[str, float]] = field(default_factory=list)
    mood: list[tuple[str, float]] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    tags: list[tuple[str, float]] = field(default_factory=list)
    start: float = 0.0  # offset of the tagged audio in the file, seconds

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        data = asdict(self)
        for key in ("genre", "mood", "tags"):
            data[key] = [
                {"label": n, "probability": round(p, 4)} for n, p in getattr(self, key)[:top]
            ]
        data["features"] = {k: round(v, 4) for k, v in self.features.items()}
        return data


class Tagger:
    """A trained model ready to tag audio.

    Args:
        model: the network (run with PyTorch on ``device``), or any :class:`Runner` (e.g. an
            :class:`OnnxRunner`): windowing, batching and aggregation are the same for all.
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
        model: TaggerNet | Runner,
        spec: TaggerSpec | Mapping[str, Any],
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        overlap: float = 0.5,
        max_windows: int | None = 64,
    ) -> None:
        self.device = torch.device(device)
        self.runner: Runner = (
            TorchRunner(model, self.device) if isinstance(model, nn.Module) else model
        )
        self.net = getattr(self.runner, "net", None)  # the nn.Module, when PyTorch runs it
        self.spec = spec if isinstance(spec, TaggerSpec) else TaggerSpec.from_hparams(spec)
        self.batch_size = batch_size
        self.sample_rate = self.spec.sample_rate
        self.window = self.spec.window_samples
        self.hop = max(int(self.window * (1.0 - overlap)), 1)
        self.max_windows = max_windows
        self._mean = torch.tensor(self.spec.feature_mean, dtype=torch.float32)
        self._std = torch.tensor(self.spec.feature_std, dtype=torch.float32)
        # A regression head can overshoot; report values inside each feature's valid range.
        inf = float("inf")
        ranges = [FEATURE_RANGES.get(n, (-inf, inf)) for n in self.spec.feature_names]
        self._low = torch.tensor([r[0] for r in ranges], dtype=torch.float32)
        self._high = torch.tensor([r[1] for r in ranges], dtype=torch.float32)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Tagger:
        """A tagger running a Lightning checkpoint with PyTorch."""
        net, spec = load_network(path)
        return cls(net, spec, device=device, **kwargs)

    @classmethod
    def from_onnx(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Tagger:
        """A tagger running a model exported by ``scripts/export_onnx.py`` with onnxruntime."""
        runner = OnnxRunner(path, device=device)
        return cls(runner, runner.hparams, device=device, **kwargs)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Tagger:
        """``from_onnx`` for ``*.onnx``, else ``from_checkpoint``."""
        loader = cls.from_onnx if str(path).lower().endswith(".onnx") else cls.from_checkpoint
        return loader(path, device=device, **kwargs)

    # -- raw outputs ------------------------------------------------------------------------------
    def starts(self, n_samples: int, max_windows: int | None = None) -> list[int]:
        """Window starts (samples) for ``n_samples`` of audio; ``max_windows`` keeps that many,
        evenly spread from the first to the last."""
        starts = window_starts(n_samples, self.window, self.hop)
        return [starts[i] for i in spread_evenly(len(starts), max_windows)]

    def cut(self, wave: torch.Tensor, starts: Sequence[int]) -> torch.Tensor:
        """(len(starts), window) windows of a (samples,) waveform; audio no longer than a window
        is used whole, unpadded (1, samples)."""
        if wave.numel() <= self.window:
            return wave[None]
        return torch.stack([wave[s : s + self.window] for s in starts])

    def windows(
        self, wave: torch.Tensor, max_windows: int | None = None
    ) -> tuple[list[int], torch.Tensor]:
        """Window starts (samples) and the (n_windows, window) windows of a (samples,) waveform."""
        starts = self.starts(wave.numel(), max_windows)
        return starts, self.cut(wave, starts)

    def finish(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw runner outputs → probabilities (softmax / sigmoid) and natural-unit features,
        clipped to their valid range (``FEATURE_RANGES``)."""
        outputs = dict(raw)
        for task in ("genre", "mood"):
            if task in outputs:
                outputs[task] = outputs[task].softmax(-1)
        if "tags" in outputs:
            outputs["tags"] = outputs["tags"].sigmoid()
        if "features" in outputs:
            natural = outputs["features"] * self._std + self._mean
            outputs["features"] = torch.maximum(torch.minimum(natural, self._high), self._low)
        return outputs

    @torch.inference_mode()
    def window_outputs(
        self, wave: torch.Tensor, max_windows: int | None = None
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Run the windows of a (samples,) waveform; return window starts and per-window outputs.

        ``max_windows`` keeps that many windows, evenly spread from the first to the last.

        Outputs are probabilities for ``genre``/``mood``/``tags`` (softmax / sigmoid), natural-unit
        ``features`` and the ``embedding``, each (n_windows, n) on the CPU.
        """
        starts = self.starts(wave.numel(), max_windows)
        # Cut one batch at a time: an hour-long timeline never holds every window at once.
        chunks = [
            self.runner(self.cut(wave, starts[i : i + self.batch_size]))
            for i in range(0, len(starts), self.batch_size)
        ]
        return starts, self.finish({k: torch.cat([c[k] for c in chunks]) for k in chunks[0]})

    def _prediction(
        self,
        outputs: dict[str, torch.Tensor],
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
        return ClipPrediction(
            path=path,
            duration=duration,
            windows=windows,
            genre=ranked("genre", spec.genre_names),
            mood=ranked("mood", spec.mood_names),
            features=features,
            tags=ranked("tags", spec.tag_names),
            start=start,
        )

    # -- public API -------------------------------------------------------------------------------
    def predict_waveform(
        self, wave: torch.Tensor, path: str | None = None, start: float = 0.0
    ) -> ClipPrediction:
        """Tag a (samples,) float waveform at the model's sample rate: windows averaged."""
        starts, outputs = self.window_outputs(wave, self.max_windows)
        mean = {k: v.mean(0) for k, v in outputs.items()}
        return self._prediction(mean, path, wave.numel() / self.sample_rate, len(starts), start)

    def load(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> torch.Tensor:
        """Decode ``path`` for this model; refuses audio shorter than ``MIN_SECONDS`` and digital
        silence (any label the model gave it would be noise)."""
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
        """Decode and tag an audio file (any format soundfile reads, any rate, mono or stereo)."""
        return self.predict_waveform(self.load(path, offset, duration), str(path), start=offset)

    def timeline(
        self, path: str | os.PathLike, offset: float = 0.0, duration: float | None = None
    ) -> list[ClipPrediction]:
        """One prediction per window of the file, in time order (``start`` in seconds)."""
        wave = self.load(path, offset, duration)
        starts, outputs = self.window_outputs(wave)
        seconds = min(self.window, wave.numel()) / self.sample_rate
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

    @torch.inference_mode()
    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        offset: float = 0.0,
        duration: float | None = None,
        decode_workers: int = 2,
    ) -> Iterator[ClipPrediction | AudioError]:
        """Tag many files with one model, in order; yields a prediction, or the AudioError of a
        file that cannot be used (and goes on).

        Windows of consecutive files share batches (a folder of short clips still runs full
        batches), and the next files decode in ``decode_workers`` threads meanwhile (libsndfile
        and torch release the GIL). Results are those of :meth:`predict_file`.
        """
        jobs: deque[_Job] = deque()
        for path, result in self._decode_ahead(paths, offset, duration, decode_workers):
            job = _Job(str(path))
            if isinstance(result, AudioError):
                job.error = result
            else:
                job.seconds = result.numel() / self.sample_rate
                job.starts, job.waiting = self.windows(result, self.max_windows)
            jobs.append(job)
            while sum(len(j.waiting) for j in jobs) >= self.batch_size:
                self._run_shared_batch(jobs)
            yield from self._pop_finished(jobs, offset)
        while any(len(j.waiting) for j in jobs):
            self._run_shared_batch(jobs)
        yield from self._pop_finished(jobs, offset)

    def _decode_or_error(
        self, path: str | os.PathLike, offset: float, duration: float | None
    ) -> torch.Tensor | AudioError:
        try:
            return self.load(path, offset, duration)
        except AudioError as err:
            return err

    def _decode_ahead(
        self,
        paths: Iterable[str | os.PathLike],
        offset: float,
        duration: float | None,
        workers: int,
    ) -> Iterator[tuple[str | os.PathLike, torch.Tensor | AudioError]]:
        """(path, waveform or AudioError) in order, decoding up to ``2 * workers`` files ahead."""
        workers = max(1, workers)
        todo = iter(paths)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            ahead: deque[tuple[str | os.PathLike, Future]] = deque()

            def submit() -> None:
                for path in todo:
                    ahead.append((path, pool.submit(self._decode_or_error, path, offset, duration)))
                    return

            for _ in range(2 * workers):
                submit()
            while ahead:
                path, future = ahead.popleft()
                submit()
                yield path, future.result()

    def _run_shared_batch(self, jobs: deque[_Job]) -> None:
        """Run up to ``batch_size`` waiting windows, taken from the oldest jobs first.

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
        out = self.runner(torch.cat([job.waiting[:n] for job, n in taken]))
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
            outputs = self.finish({k: torch.cat([d[k] for d in job.done]) for k in job.done[0]})
            mean = {k: v.mean(0) for k, v in outputs.items()}
            yield self._prediction(mean, job.path, job.seconds, len(job.starts), offset)


@dataclass
class _Job:
    """One file in :meth:`Tagger.predict_files`: windows still to run and outputs so far."""

    path: str
    error: AudioError | None = None
    seconds: float = 0.0
    starts: list[int] = field(default_factory=list)
    waiting: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    done: list[dict[str, torch.Tensor]] = field(default_factory=list)
