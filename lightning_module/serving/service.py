"""The tagging service without the HTTP: one model, a batcher, worker threads and temp folders.

:class:`TaggingService` loads the model once (``Tagger.from_file``), starts a
:class:`~.batcher.WindowBatcher` on its runner and tags files in worker threads through a
``Tagger`` whose runner is that batcher: decoding, windowing, averaging and the result are
``Tagger.predict_file`` / ``Tagger.timeline`` themselves, so an answer is the one
``predict_clip --json`` prints for the same file (``path`` aside), while concurrent requests
share forward passes. ``app.py`` puts HTTP in front of it.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.audio import AudioError, audio_duration
from datamodules.schema import FEATURE_UNITS
from lightning_module.inference.formats.json_lines import prediction_dict
from lightning_module.inference.formats.text import model_notes
from lightning_module.inference.runners import OnnxRunner
from lightning_module.inference.tagger import Tagger
from lightning_module.serving.batcher import WindowBatcher, deadline
from lightning_module.serving.limits import ConcurrencyGate, ServiceLimits


class TooLongError(AudioError):
    """Audio longer than the service tags per request (HTTP 413)."""


class UnsupportedAudioError(AudioError):
    """A non-empty file whose header no decoder reads: not audio, or a format we lack (415)."""


@dataclass(frozen=True)
class ServiceConfig:
    """How to run the service.

    Args:
        model: checkpoint (``.ckpt``) or exported ``.onnx`` file, loaded once.
        device: where the model runs (``cpu``, ``cuda``, ...).
        batch_size: windows per model call of one request, as ``predict_clip --batch-size``
            (a lone request then runs exactly the batches ``predict_clip`` runs).
        overlap: fraction of a window shared with the next, as ``predict_clip --overlap``.
        max_batch: most windows of all requests together in one forward pass.
        max_wait: seconds waiting windows wait for others before a pass runs anyway.
        music_root: folder ``POST /v1/tag-path`` may read below (``None``: endpoint disabled).
        token: bearer token every ``/v1`` request must carry (``None``: none needed).
        temp_dir: where uploads are written, one folder per request, removed after it
            (``None``: a fresh folder under the system temp dir, removed at shutdown).
        limits: upload, duration, time and concurrency bounds.
    """

    model: Path
    device: str = "cpu"
    batch_size: int = 16
    overlap: float = 0.5
    max_batch: int = 64
    max_wait: float = 0.01
    music_root: Path | None = None
    token: str | None = field(default=None, repr=False)  # never in a repr, hence never logged
    temp_dir: Path | None = None
    limits: ServiceLimits = field(default_factory=ServiceLimits)


class TaggingService:
    """One loaded model serving many requests (see the module docstring).

    Args:
        config: what to load and how to serve it.
        tagger: an already loaded tagger to serve instead of loading ``config.model`` (its
            runner, spec and window settings are used).
    """

    def __init__(self, config: ServiceConfig, tagger: Tagger | None = None) -> None:
        self.config = config
        self.limits = config.limits
        base = tagger or Tagger.from_file(
            config.model,
            device=config.device,
            batch_size=config.batch_size,
            overlap=config.overlap,
        )
        self.base = base
        self.spec = base.spec
        self.batcher = WindowBatcher(base.runner, config.max_batch, config.max_wait)
        # The same windowing, averaging and results as the base tagger; only the runner differs:
        # its windows travel through the shared batcher.
        self.tagger = Tagger(
            self.batcher,
            base.spec,
            device=base.device,
            batch_size=base.batch_size,
            max_windows=base.max_windows,
        )
        self.tagger.hop = base.hop  # exactly the base tagger's windows (no overlap round trip)
        self.tagger.min_tail = base.min_tail
        # One thread per request in progress (it decodes block by block, handing windows to the
        # batcher as they come): the gate, not this pool, is what bounds concurrency.
        self.gate = ConcurrencyGate(self.limits.max_concurrent)
        self.pool = ThreadPoolExecutor(
            max_workers=self.limits.max_concurrent, thread_name_prefix="tag"
        )
        self._own_temp = config.temp_dir is None
        if config.temp_dir is None:
            self.temp_root = Path(tempfile.mkdtemp(prefix="audiotagger-serve-"))
        else:
            self.temp_root = Path(config.temp_dir)
            self.temp_root.mkdir(parents=True, exist_ok=True)
        self.music_root = Path(config.music_root).resolve() if config.music_root else None
        self.runner_kind = "onnx" if isinstance(base.runner, OnnxRunner) else "pytorch"

    # -- temp folders -----------------------------------------------------------------------------
    def new_folder(self) -> Path:
        """A fresh private (0700) folder for one request's upload."""
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.temp_root))

    @staticmethod
    def remove_folder(folder: Path | None) -> None:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    # -- tagging (worker threads) -----------------------------------------------------------------
    def tag(
        self,
        path: Path,
        shown: str,
        *,
        timeline: bool = False,
        with_clip: bool = False,
        top: int = 3,
        offset: float = 0.0,
        duration: float | None = None,
        until: float | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Tag ``path``, reporting it as ``shown``: ``ClipPrediction.to_dict(top)``, or one per
        window with ``timeline``, or ``{"clip": ..., "timeline": [...]}`` with both. Blocking;
        run it in :attr:`pool`.

        Args:
            with_clip: with ``timeline``, also the clip prediction. It is computed by
                ``predict_file`` itself, as without ``timeline`` (the same windows, averaged the
                same way: at most ``max_windows`` of them, evenly spread, probabilities and
                tempo bins averaged before ranking and decoding), not derived from the
                timeline's rounded per-window results; the file is decoded twice, but uploaded
                once.
            until: the request's deadline (``time.monotonic``); past it the work stops at its
                next model batch with :class:`~.batcher.DeadlineExceeded`.

        Raises:
            AudioError: (or :class:`TooLongError` / :class:`UnsupportedAudioError`) whose message
                names ``shown``, never the server's path.
        """
        try:
            self._check_header(path, offset, duration)
            # Never decode more than the cap, whatever the header said: a longer result is
            # refused below instead of costing hours of decoding.
            limit = self.limits.max_seconds + 1.0
            span = limit if duration is None else min(duration, limit)
            with deadline(until):
                clip: dict[str, Any] | None = None
                if not timeline or with_clip:
                    prediction = self.tagger.predict_file(path, offset, span)
                    self._check_length(path, prediction.duration)
                    clip = prediction_dict(dataclasses.replace(prediction, path=shown), top)
                    if not timeline:
                        return clip
                windows = self.tagger.timeline(path, offset, span)
                if windows:
                    self._check_length(path, windows[-1].start - offset + windows[-1].duration)
                listed = [prediction_dict(dataclasses.replace(w, path=shown), top) for w in windows]
                return listed if clip is None else {"clip": clip, "timeline": listed}
        except AudioError as err:
            text = str(err).replace(str(path), shown)
            raise type(err)(text) from None

    def _check_header(self, path: Path, offset: float, duration: float | None) -> None:
        """Refuse what the header shows we will not tag: unreadable content (415; missing, empty
        or not a file: the plain AudioError) or
        longer than ``max_seconds`` (413), before any decoding."""
        try:
            seconds = audio_duration(path)  # the check (and message) decoding starts with
        except AudioError as err:
            content = path.is_file() and path.stat().st_size > 0  # not missing, empty, a folder
            raise (UnsupportedAudioError(str(err)) if content else err) from None
        span = max(0.0, seconds - offset)
        self._check_length(path, span if duration is None else min(span, duration))

    def _check_length(self, path: Path, seconds: float) -> None:
        cap = self.limits.max_seconds
        if seconds > cap:
            raise TooLongError(
                f"{path}: too long to tag here ({seconds:.1f} s > {cap:g} s per request; "
                "send a slice with offset/duration)"
            )

    # -- what is served ---------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        """Labels, features (with units and, when the checkpoint recorded it, what each was
        trained on), input settings, limits, and the notes ``predict_clip`` prints before its
        answers (``synthetic_only``: every training clip was synthetic, so the answers mean
        little on real music): what ``GET /v1/model`` returns."""
        spec = self.spec
        basis = getattr(spec, "feature_basis", None)
        trained = getattr(spec, "trained_features", spec.feature_names)
        features = []
        for name in spec.feature_names:
            entry: dict[str, Any] = {"name": name, "unit": FEATURE_UNITS.get(name, "")}
            if callable(basis) and getattr(spec, "provenance_known", False):
                entry["trained"] = name in trained
                entry["trained_on"] = basis(name)
            features.append(entry)
        from lightning_module.inference.shipped import shipped_details

        return {
            "model": Path(self.config.model).name,
            # the shipped model: its id, weights licence and model card (markdown)
            "shipped": shipped_details(self.config.model),
            "runner": self.runner_kind,
            "format_version": spec.format_version,
            "backbone": spec.backbone,
            "sample_rate": spec.sample_rate,
            "window_seconds": spec.window_samples / spec.sample_rate,
            "hop_seconds": self.tagger.hop / spec.sample_rate,
            "max_windows": self.tagger.max_windows,
            "genres": list(spec.genre_names),
            "moods": list(spec.mood_names),
            "tags": list(spec.tag_names),
            "genre_tags": list(getattr(spec, "genre_tag_names", ())),
            "keys": list(getattr(spec, "key_names", ())),
            "features": features,
            "limits": {
                "max_upload_bytes": self.limits.max_upload_bytes,
                "max_seconds": self.limits.max_seconds,
                "request_timeout": self.limits.request_timeout,
                "max_concurrent": self.limits.max_concurrent,
            },
            "tag_path": self.music_root is not None,
            "synthetic_only": spec.synthetic_only,
            "notes": model_notes(spec),
        }

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish queued work, stop the threads, remove the temp folder if it is ours."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.batcher.close(timeout)
        if self._own_temp:
            shutil.rmtree(self.temp_root, ignore_errors=True)
