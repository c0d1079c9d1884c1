"""Tag audio with a trained model: the one implementation behind predict_clip and evaluate.

Loads the checkpoint without executing pickled code (``torch.load(weights_only=True)``), rebuilds
the pure ``nn.Module`` from the saved hyperparameters (or opens an exported ``.onnx`` file: see
``runners``), splits long audio into overlapping windows, runs them in batches and averages. A
folder of files shares batches across files while the next files decode in threads; a timeline
keeps one prediction per window. Imports neither Lightning, TensorBoard nor pandas, so a cold
start costs little more than importing torch.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from datamodules.audio import AUDIO_EXTENSIONS, AudioError, load_audio, window_starts
from datamodules.features import FEATURE_RANGES, FEATURE_UNITS
from lightning_module.network import TaggerNet, build_network
from lightning_module.runners import OnnxModelError, OnnxRunner, Runner, TorchRunner

#: Shortest audio we tag, in seconds; shorter clips carry too little music to say anything.
MIN_SECONDS = 1.0


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


#: Errors that mean "this model file cannot be used" (a checkpoint or an ONNX export).
ModelError = (CheckpointError, OnnxModelError)


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


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint safely: tensors and plain containers only, never pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain "
            f"values ({first})"
        ) from err
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__})") from err
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise CheckpointError(
            f"{path}: not a MusicTagger checkpoint (no state_dict/hyper_parameters)"
        )
    return checkpoint


def load_network(path: str | os.PathLike) -> tuple[TaggerNet, dict[str, Any]]:
    """The network (eval mode, CPU) and hyperparameters of a checkpoint, loaded safely."""
    checkpoint = load_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    try:
        net = build_network(hparams)
        state = {
            k.removeprefix("net."): v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith("net.")
        }
        net.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: does not match the model it describes ({type(err).__name__}: "
            f"{str(err).splitlines()[0]})"
        ) from err
    return net.eval(), hparams


def find_checkpoint(folder: str | os.PathLike = "checkpoints") -> Path:
    """The newest ``best*.ckpt`` in ``folder`` (else the newest ``*.ckpt``)."""
    folder = Path(folder)
    for pattern in ("best*.ckpt", "*.ckpt"):
        found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    raise CheckpointError(
        f"{folder}: no checkpoint found; train one with `make train` or pass --checkpoint"
    )


class Tagger:
    """A trained model ready to tag audio.

    Args:
        model: the network (run with PyTorch on ``device``), or any :class:`Runner` (e.g. an
            :class:`OnnxRunner`): windowing, batching and aggregation are the same for all.
        hparams: the checkpoint's hyperparameters (label names, feature statistics, frontend).
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
        hparams: dict[str, Any],
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
        self.hparams = hparams
        self.batch_size = batch_size
        self.sample_rate = int(hparams["sample_rate"])
        self.window = int(round(float(hparams.get("crop_seconds", 3.0)) * self.sample_rate))
        self.hop = max(int(self.window * (1.0 - overlap)), 1)
        self.max_windows = max_windows
        self._mean = torch.tensor(hparams["feature_mean"], dtype=torch.float32)
        self._std = torch.tensor(hparams["feature_std"], dtype=torch.float32)
        # A regression head can overshoot; report values inside each feature's valid range.
        inf = float("inf")
        ranges = [FEATURE_RANGES.get(n, (-inf, inf)) for n in hparams.get("feature_names") or []]
        self._low = torch.tensor([r[0] for r in ranges], dtype=torch.float32)
        self._high = torch.tensor([r[1] for r in ranges], dtype=torch.float32)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> Tagger:
        """A tagger running a Lightning checkpoint with PyTorch."""
        net, hparams = load_network(path)
        return cls(net, hparams, device=device, **kwargs)

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
        if max_windows is not None and len(starts) > max_windows:
            picks = torch.linspace(0, len(starts) - 1, max_windows).round().long().tolist()
            starts = [starts[i] for i in picks]
        return starts

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
        hp = self.hparams

        def ranked(key: str, names: Sequence[str]) -> list[tuple[str, float]]:
            if key not in outputs:
                return []
            probs = outputs[key].tolist()
            return sorted(zip(names, probs, strict=True), key=lambda pair: -pair[1])

        features = {}
        if "features" in outputs:
            features = dict(zip(hp["feature_names"], outputs["features"].tolist(), strict=True))
        return ClipPrediction(
            path=path,
            duration=duration,
            windows=windows,
            genre=ranked("genre", hp["genre_names"]),
            mood=ranked("mood", hp["mood_names"]),
            features=features,
            tags=ranked("tags", hp.get("tag_names") or []),
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


def format_prediction(prediction: ClipPrediction, top: int = 3) -> str:
    """Human-readable summary: top genres, moods and tags, and every feature in natural units."""
    lines = [
        f"{prediction.path or 'audio'}  "
        f"({prediction.duration:.1f} s, {prediction.windows} window(s))"
    ]
    for key in ("genre", "mood", "tags"):
        ranked = getattr(prediction, key)[:top]
        if ranked:
            lines.append(f"  {key + ':':<9}" + ", ".join(f"{name} {p:.2f}" for name, p in ranked))
    if prediction.features:
        lines.append("  features:")
        for name, value in prediction.features.items():
            unit = FEATURE_UNITS.get(name, "")
            text = f"{value:.1f} {unit}" if unit else f"{value:.3f}"
            lines.append(f"    {name:<17}{text}")
    return "\n".join(lines)


# -- libraries, tables and files ------------------------------------------------------------------
def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursively, by extension), sorted; hidden ones skipped."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def prediction_columns(hparams: dict[str, Any]) -> list[str]:
    """CSV columns of :func:`prediction_record` for a model with these hyperparameters."""
    columns = ["path", "start", "duration", "windows"]
    for task in ("genre", "mood"):
        if hparams.get(f"{task}_names"):
            columns += [task, f"{task}_probability"]
    columns += list(hparams.get("feature_names") or [])
    for task in ("genre", "mood", "tag"):
        columns += [f"{task}:{name}" for name in hparams.get(f"{task}_names") or []]
    return columns


def prediction_record(prediction: ClipPrediction) -> dict[str, Any]:
    """One flat row: top genre and mood with their probability, every feature, every class
    probability (``genre:<name>``, ``mood:<name>``, ``tag:<name>``)."""
    record: dict[str, Any] = {
        "path": prediction.path,
        "start": round(prediction.start, 3),
        "duration": round(prediction.duration, 3),
        "windows": prediction.windows,
    }
    for task in ("genre", "mood"):
        ranked = getattr(prediction, task)
        if ranked:
            record[task], record[f"{task}_probability"] = ranked[0][0], round(ranked[0][1], 4)
    record.update({k: round(v, 4) for k, v in prediction.features.items()})
    for task, key in (("genre", "genre"), ("mood", "mood"), ("tags", "tag")):
        record.update({f"{key}:{n}": round(p, 4) for n, p in getattr(prediction, task)})
    return record


class PredictionWriter:
    """Streams predictions to ``stream`` as CSV (``fmt="csv"``, header first) or JSON lines
    (``fmt="jsonl"``, :meth:`ClipPrediction.to_dict`), flushing each so a long run can be
    watched and an interrupted one keeps what it wrote."""

    def __init__(
        self, stream: IO[str], fmt: str, hparams: dict[str, Any], top: int | None = None
    ) -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
        self.stream, self.fmt, self.top = stream, fmt, top
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, prediction_columns(hparams), extrasaction="ignore")
            self._csv.writeheader()

    def write(self, prediction: ClipPrediction) -> None:
        if self.fmt == "csv":
            self._csv.writerow(prediction_record(prediction))
        else:
            self.stream.write(json.dumps(prediction.to_dict(self.top)) + "\n")
        self.stream.flush()


#: Columns of the timeline table: (feature, header).
TIMELINE_FEATURES = (("energy", "energy"), ("valence", "valence"))


def format_timeline(windows: Sequence[ClipPrediction]) -> str:
    """A table with one line per window: time span, top genre and mood, energy and valence."""
    header = f"{'start':>8} {'end':>8}  {'genre':<18} {'mood':<16}" + "".join(
        f" {title:>8}" for _, title in TIMELINE_FEATURES
    )
    lines = [header]
    for w in windows:
        genre = f"{w.genre[0][0]} {w.genre[0][1]:.2f}" if w.genre else "-"
        mood = f"{w.mood[0][0]} {w.mood[0][1]:.2f}" if w.mood else "-"
        values = "".join(
            f" {w.features[name]:>8.3f}" if name in w.features else f" {'-':>8}"
            for name, _ in TIMELINE_FEATURES
        )
        lines.append(
            f"{_clock(w.start):>8} {_clock(w.start + w.duration):>8}  {genre:<18} {mood:<16}"
            + values
        )
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def plot_timeline(
    windows: Sequence[ClipPrediction], out: str | os.PathLike, title: str | None = None
) -> Path:
    """Save a PNG: genre and mood probabilities (stacked) and energy / valence over time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only when a plot is asked for
    from matplotlib.figure import Figure

    if not windows:
        raise ValueError("no windows to plot")
    centres = [w.start + w.duration / 2 for w in windows]
    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for ax, task in zip(axes[:2], ("genre", "mood"), strict=True):
        names = sorted(name for name, _ in getattr(windows[0], task))
        if names:
            probs = [[dict(getattr(w, task))[n] for w in windows] for n in names]
            ax.stackplot(centres, probs, labels=names, alpha=0.85)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{task} probability")
    for name, _ in TIMELINE_FEATURES:
        if name in windows[0].features:
            axes[2].plot(centres, [w.features[name] for w in windows], marker=".", label=name)
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("0-1")
    axes[2].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    axes[2].set_xlabel("time (s), window centres")
    axes[0].set_title(title or str(windows[0].path or ""))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out


# -- Spotify previews -----------------------------------------------------------------------------
_SPOTIFY_TRACK = re.compile(
    r"^(?:spotify:track:|https?://open\.spotify\.com/(?:intl-[a-zA-Z-]+/)?track/)?"
    r"([0-9A-Za-z]{22})(?:[/?#].*)?$"
)


class SpotifyError(RuntimeError):
    """A Spotify track that cannot be tagged; the message is one line naming the track."""


def spotify_track_id(text: str) -> str | None:
    """The track ID in a Spotify track ID, ``spotify:track:`` URI or open.spotify.com URL."""
    match = _SPOTIFY_TRACK.match(text.strip())
    return match.group(1) if match else None


def fetch_spotify_preview(
    track: str, folder: str | os.PathLike, options: dict[str, Any] | None = None
) -> Path:
    """Download the 30 s preview of a Spotify track into ``folder`` with the project's Spotify
    client (``datamodules.sources.spotify``: real spotipy, credentials from ``SPOTIPY_CLIENT_ID``
    / ``SPOTIPY_CLIENT_SECRET`` or ``.env``); returns the file.

    Args:
        track: a track ID, ``spotify:track:`` URI or open.spotify.com track URL.
        folder: where the preview is written (``spotify_<id>.mp3``).
        options: :class:`SpotifyConfig` keys (``api``, ``auth_url``, ``env_file``, ``market``,
            ``timeout``, ``retries``, ``download``), e.g. for a proxy or a test server.

    Raises:
        SpotifyError: no credentials, credentials refused, unknown track, no preview (Spotify
            returns none to apps created after 2024-11-27), HTTP or download error; one line.
    """
    track_id = spotify_track_id(track)
    if track_id is None:
        raise SpotifyError(f"{track}: not a Spotify track ID, spotify:track: URI or track URL")
    name = f"spotify:track:{track_id}"
    try:  # spotipy is only imported when a Spotify track is asked for
        import requests
        from spotipy.exceptions import SpotifyException, SpotifyOauthError

        from datamodules.sources import spotify
        from datamodules.sources.base import SourceError
        from datamodules.sources.download import (
            DownloadConfig,
            DownloadError,
            download_file,
            make_session,
        )
    except ImportError as err:
        raise SpotifyError(
            f"{name}: the Spotify client is not available ({err.name} missing); "
            "download the audio yourself and pass the file"
        ) from None
    options = dict(options or {})
    download = DownloadConfig(**options.pop("download", {}))
    config = spotify.SpotifyConfig(moods={"track": [name]}, download=download, **options)
    env_file = spotify.read_env_file(config.env_file)
    if not all(os.environ.get(v) or env_file.get(v) for v in spotify.CREDENTIAL_VARIABLES):
        raise SpotifyError(
            f"{name}: set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (environment or "
            f"{config.env_file}) to fetch its preview, or pass the audio file instead"
        )
    try:
        client = spotify.make_client(config)
        with spotify._quiet_spotipy():  # spotipy would log each HTTP error; we report it once
            found = client.tracks([track_id], market=config.market).get("tracks") or [None]
    except SourceError as err:
        raise SpotifyError(f"{name}: {str(err).removeprefix('spotify: ')}") from None
    except SpotifyOauthError:
        raise SpotifyError(
            f"{name}: Spotify refused the client credentials; check SPOTIPY_CLIENT_ID/SECRET"
        ) from None
    except SpotifyException as err:
        status = getattr(err, "http_status", None)
        raise SpotifyError(f"{name}: Spotify API error (HTTP {status})") from None
    except requests.exceptions.RequestException as err:
        raise SpotifyError(f"{name}: cannot reach the Spotify API ({type(err).__name__})") from None
    info = found[0]
    if not info:
        raise SpotifyError(f"{name}: no such track on Spotify")
    artists = ", ".join(a.get("name", "") for a in info.get("artists") or [])
    title = f"{artists} - {info.get('name', '')}".strip(" -")
    url = info.get("preview_url")
    if not url:
        raise SpotifyError(
            f"{name} ({title}): Spotify gives no preview for it (null preview_url; Spotify "
            "stopped serving previews to apps created after 2024-11-27); pass the audio file"
        )
    dest = Path(folder) / f"spotify_{track_id}.mp3"
    try:
        return download_file(make_session(download), url, dest, download)
    except DownloadError as err:
        raise SpotifyError(f"{name} ({title}): preview download failed ({err})") from None


# -- whole folders ------------------------------------------------------------------------------
@dataclass
class LibraryReport:
    """What :func:`tag_library` did: files tagged, and (file, reason) for each file skipped."""

    tagged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def tag_library(
    tagger: Tagger,
    folder: str | os.PathLike,
    stream: IO[str],
    fmt: str = "csv",
    top: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    progress: bool = True,
    errors: IO[str] | None = None,
) -> LibraryReport:
    """Tag every audio file under ``folder`` with one model, batched, and write CSV / JSON lines
    to ``stream`` as results arrive; an unreadable file is skipped and reported on ``errors``
    (one ``skipped: <file>: <reason>`` line each) and the run goes on."""
    from tqdm.auto import tqdm

    files = audio_files(folder)
    if not files:
        raise AudioError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    writer = PredictionWriter(stream, fmt, tagger.hparams, top)
    report = LibraryReport()
    results = tagger.predict_files(files, offset, duration)
    bar = tqdm(results, total=len(files), unit="file", disable=not progress, leave=False)
    for result in bar:
        if isinstance(result, AudioError):
            path, _, reason = str(result).partition(": ")
            report.skipped.append((path, reason))
            if errors is not None:
                bar.write(f"skipped: {result}", file=errors)  # above the bar, not through it
        else:
            writer.write(result)
            report.tagged += 1
    return report
