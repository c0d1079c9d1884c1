"""Polite, resumable audio downloads for sources with remote previews.

* only ``http``/``https`` URLs; file names come from ids (``Item.file_id``), never from titles;
* a ``requests`` session whose adapter retries (``urllib3.util.Retry``) on connection errors,
  timeouts, 429 (honouring ``Retry-After``) and 5xx, with exponential backoff;
* a body cut off mid-download (connection reset, fewer bytes than ``Content-Length``) is retried
  too: urllib3 only retries before the body starts, so that one loop is ours;
* a per-file size cap (``Content-Length`` checked first, then the bytes actually read);
* bounded concurrency (a thread pool of ``workers``);
* written to ``<dest>.part`` and renamed when complete: a killed build never leaves half a file, and
  a file that exists is complete, so a re-run does not download it again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from datamodules.audio import AUDIO_EXTENSIONS
from datamodules.io import atomic_open
from datamodules.sources.base import Item, Skip

log = logging.getLogger(__name__)

RETRY_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)
USER_AGENT = "audiotagger-dataset-builder/0.1 (+https://github.com/audiotagger)"


@dataclass
class DownloadConfig:
    """Download options (a ``download:`` mapping in a source's YAML).

    Attributes:
        workers: concurrent downloads.
        retries: retries per request (connection errors, timeouts, 429, 5xx, cut-off bodies).
        backoff: base of the exponential backoff in seconds (backoff * 2**attempt).
        max_retry_after: longest ``Retry-After`` (seconds) honoured before giving up on a file.
        timeout: connect and read timeout in seconds.
        max_mb: files larger than this many MB are refused (a 30 s preview is ~0.5 MB).
    """

    workers: int = 4
    retries: int = 4
    backoff: float = 0.5
    max_retry_after: float = 120.0
    timeout: float = 20.0
    max_mb: float = 20.0


class DownloadError(RuntimeError):
    """A download that failed for good; ``reason`` is a short category for the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def redact(url: str) -> str:
    """The URL without query string or credentials, safe for logs and skipped.csv."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def safe_file_id(file_id: str) -> str:
    """A file name stem from an id: letters, digits, ``-`` and ``_`` only (no path tricks)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", str(file_id)).strip("_")
    if not cleaned:
        raise ValueError(f"id {file_id!r} gives an empty file name")
    return cleaned[:120]


class RetryAfterTooLong(Exception):
    """A ``Retry-After`` longer than ``max_retry_after`` (not an OSError, so requests does not
    turn it into a retryable ConnectionError)."""


class _Retry(Retry):
    """urllib3 Retry whose ``Retry-After`` waits are capped (a server asking for an hour fails the
    file instead of stalling the build)."""

    max_retry_after: float = 120.0

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        if seconds is not None and seconds > self.max_retry_after:
            raise RetryAfterTooLong(
                f"server asked to retry after {seconds:.0f} s (> {self.max_retry_after:.0f} s)"
            )
        return seconds


def make_session(config: DownloadConfig) -> requests.Session:
    """A session that retries connection errors, timeouts, 429 and 5xx with backoff."""
    capped = type("_CappedRetry", (_Retry,), {"max_retry_after": config.max_retry_after})
    retry = capped(
        total=config.retries,
        connect=config.retries,
        read=config.retries,
        status=config.retries,
        backoff_factor=config.backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(
        max_retries=retry, pool_connections=config.workers, pool_maxsize=config.workers
    )
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def check_url(url: str) -> None:
    """Refuse anything but http(s) URLs with a host."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError("bad url", f"not an http(s) URL: {redact(str(url))[:200]!r}")


def download_file(session: requests.Session, url: str, dest: Path, config: DownloadConfig) -> Path:
    """Download ``url`` to ``dest`` (temp file + rename); returns ``dest``.

    Raises:
        DownloadError: bad URL, HTTP error after retries, too large, empty or cut-off body.
    """
    check_url(url)
    cap = int(config.max_mb * 1024 * 1024)
    where = redact(url)
    last: Exception | None = None
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff * 2 ** (attempt - 1))
        try:
            with session.get(url, stream=True, timeout=config.timeout) as response:
                if response.status_code >= 400:
                    raise DownloadError(
                        f"http {response.status_code}", f"{where}: HTTP {response.status_code}"
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise DownloadError(
                        "too large", f"{where}: {int(declared) / 1e6:.1f} MB > {config.max_mb} MB"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                with atomic_open(dest, "wb") as tmp:  # a failed download leaves no file
                    for chunk in response.iter_content(chunk_size=64 * 1024):
                        size += len(chunk)
                        if size > cap:
                            raise DownloadError(
                                "too large", f"{where}: more than {config.max_mb} MB"
                            )
                        tmp.write(chunk)
                    if size == 0:
                        raise DownloadError("empty download", f"{where}: 0 bytes")
                return dest
        except DownloadError:
            raise
        except RetryAfterTooLong as err:
            raise DownloadError("rate limited", f"{where}: {err}") from err
        except requests.exceptions.RetryError as err:
            raise DownloadError("http retries exhausted", f"{where}: {_one_line(err)}") from err
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ) as err:
            last = err  # cut-off body or reset after the adapter's own retries: try again
            log.debug("download of %s failed (attempt %d): %s", where, attempt + 1, err)
    raise DownloadError("connection failed", f"{where}: {_one_line(last)}")


def _one_line(err: object) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    # requests messages can repeat the full URL with its query string; keep them short and clean.
    return re.sub(r"\?[^\s'\")]*", "", text)[:300]


def audio_suffix(url: str) -> str:
    """The URL path's audio extension, else ``.mp3`` (previews are mp3)."""
    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if suffix in AUDIO_EXTENSIONS else ".mp3"


def downloader(config: DownloadConfig) -> Callable[[list[Item], Path], dict[str, Skip | None]]:
    """A ``download(items, audio_dir)`` for :func:`datamodules.sources.base.build_manifest`.

    Each item's file is ``audio_dir/<safe file_id><ext>``; existing files are not downloaded again.
    Sets ``item.audio`` on success; returns track_id -> Skip (failure) or None (file present).
    """

    def download(items: list[Item], audio_dir: Path) -> dict[str, Skip | None]:
        results: dict[str, Skip | None] = {}
        jobs: list[tuple[Item, Path]] = []
        for item in items:
            try:
                dest = audio_dir / f"{safe_file_id(item.file_id or item.track_id)}"
                dest = dest.with_name(dest.name + audio_suffix(str(item.url)))
            except ValueError as err:
                results[item.track_id] = Skip(item.track_id, "bad file id", str(err))
                continue
            if dest.is_file() and dest.stat().st_size > 0:
                item.audio = dest  # complete: it was renamed into place
                results[item.track_id] = None
            else:
                jobs.append((item, dest))
        if not jobs:
            return results
        session = make_session(config)
        with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
            futures = {
                pool.submit(download_file, session, str(item.url), dest, config): item
                for item, dest in jobs
            }
            for future in as_completed(futures):
                item = futures[future]
                try:
                    item.audio = future.result()
                    item.fetched = True
                    results[item.track_id] = None
                except DownloadError as err:
                    results[item.track_id] = Skip(
                        item.track_id, err.reason, str(err), redact(str(item.url))
                    )
        session.close()
        return results

    return download
