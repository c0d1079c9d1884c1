"""Fetch the 30 s preview of a Spotify track so it can be tagged like any audio file.

spotipy and the project's Spotify client are imported only when a track is asked for; Spotify is an
optional source, never required.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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
    try:  # the source's own lookup (environment, then .env), with a message for this command
        spotify.credentials(config.env_file)
    except SourceError:
        raise SpotifyError(
            f"{name}: set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (environment or "
            f"{config.env_file}) to fetch its preview, or pass the audio file instead"
        ) from None
    try:
        client = spotify.make_client(config)
        with spotify.quiet_spotipy():  # spotipy would log each HTTP error; we report it once
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
