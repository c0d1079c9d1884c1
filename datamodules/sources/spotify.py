"""``spotify``: mood playlists through the Spotify Web API (spotipy), opt-in Deezer previews.

For each mood of the config, every playlist (ID, URI or URL; a track URL adds one track) is paged
through; its tracks get that mood. Then, per unique track: audio features (batches of 100), artist
genres (batches of 50) mapped to project genres by ``genre_map``, and the 30 s preview, downloaded
into ``DIR/audio/spotify_<id>.mp3``. The manifest's ``provider`` column says who supplied the audio.

A track in playlists of two moods is resolved by the common ``conflicts`` policy (default
``majority``: the mood of most of its playlists; a tie goes to the mood listed first in the config),
and counted in the summary (``tracks listed twice``, ``mood conflicts``).

Spotify's restrictions for apps created after 2024-11-27 (403 on audio-features, null
``preview_url``, 404 on Spotify-owned playlists) each produce one message saying what happened and
which offline source to use; the build goes on with what it gets. Spotify's developer terms forbid
training models on Spotify content: check the terms that apply to you.

Credentials come from ``SPOTIPY_CLIENT_ID``/``SPOTIPY_CLIENT_SECRET`` (environment, else the
``env_file``); they are never logged, written to the manifest, the summary or any config, and the
access token is kept in memory only.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError
from spotipy.oauth2 import SpotifyClientCredentials

from datamodules.manifest import FEATURES
from datamodules.sources.base import Item, SourceConfig, SourceError, SourceListing, run_source
from datamodules.sources.download import DownloadConfig, check_url, downloader, make_session

log = logging.getLogger(__name__)

CREDENTIAL_VARIABLES: tuple[str, str] = ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET")
OFFLINE_HINT = "build from an offline table instead (csv source, fma source) or your own audio"
_TRACK_URL = re.compile(r"(?:open\.spotify\.com/(?:intl-\w+/)?track/|spotify:track:)([0-9A-Za-z]+)")


@dataclass
class DeezerConfig:
    """The opt-in Deezer preview fallback (its public API needs no key).

    Attributes:
        enabled: look up a preview on Deezer when Spotify gives none (by ISRC, then artist+title).
        api: base URL of Deezer's API.
    """

    enabled: bool = False
    api: str = "https://api.deezer.com"


@dataclass
class SpotifyConfig(SourceConfig):
    """Options of the spotify source (plus :class:`SourceConfig`'s).

    Attributes:
        moods: mood -> list of playlist IDs, URIs or URLs (track URLs/URIs add single tracks).
        genre_map: project genre -> keywords; an artist genre containing a keyword (as whole
            words, e.g. ``rock`` in ``indie rock``) maps to that project genre. A track's genre is
            the most common mapped genre over its artists' genres; unmapped -> empty.
        audio_features: request audio features (turn off for apps that get 403 anyway).
        market: ISO country code for playlist items (affects availability and previews).
        env_file: a ``.env`` file read for credentials when they are not in the environment.
        api, auth_url: the Web API and token endpoint (change only for a proxy or a test server).
        timeout, retries: for API calls (spotipy retries 429 honouring Retry-After, and 5xx).
        deezer: the preview fallback.
        download: preview download options.
        id_prefix: prefix of track ids (file names are derived from these ids).
    """

    moods: dict[str, list[str]] = field(default_factory=dict)
    genre_map: dict[str, list[str]] = field(default_factory=dict)
    audio_features: bool = True
    market: str | None = None
    env_file: str = ".env"
    api: str = "https://api.spotify.com/v1/"
    auth_url: str = "https://accounts.spotify.com/api/token"
    timeout: float = 10.0
    retries: int = 3
    deezer: DeezerConfig = field(default_factory=DeezerConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    id_prefix: str = "spotify:"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.moods or not isinstance(self.moods, dict):
            raise SourceError("moods is required: a mapping mood -> list of playlist IDs or URLs")
        for mood, playlists in self.moods.items():
            if isinstance(playlists, str):
                self.moods[mood] = [playlists]
            elif not isinstance(playlists, list) or not playlists:
                raise SourceError(f"moods.{mood}: expected a list of playlist IDs or URLs")
        for genre, keywords in self.genre_map.items():
            if isinstance(keywords, str):
                self.genre_map[genre] = [keywords]


# ---------------------------------------------------------------------------------------------
# Credentials


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (``export``, quotes and comments allowed)."""
    values: dict[str, str] = {}
    path = Path(path).expanduser()
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def credentials(env_file: str | os.PathLike) -> tuple[str, str]:
    """(client id, client secret) from the environment, else ``env_file``.

    Raises:
        SourceError: one line naming the missing variables (never their values).
    """
    from_file = read_env_file(env_file)
    values = [os.environ.get(name) or from_file.get(name) or "" for name in CREDENTIAL_VARIABLES]
    missing = [name for name, value in zip(CREDENTIAL_VARIABLES, values, strict=True) if not value]
    if missing:
        raise SourceError(
            f"spotify: no {' / '.join(missing)} (set them in the environment or in {env_file}); "
            f"or {OFFLINE_HINT}"
        )
    return values[0], values[1]


@contextmanager
def quiet_spotipy() -> Iterator[None]:
    """spotipy logs request headers (credentials, token) at DEBUG and every HTTP error at ERROR;
    we report errors ourselves, once, in plain words."""
    logger = logging.getLogger("spotipy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_client(config: SpotifyConfig) -> spotipy.Spotify:
    """A spotipy client (client-credentials flow, token cached in memory only)."""
    client_id, client_secret = credentials(config.env_file)
    auth = SpotifyClientCredentials(
        client_id=client_id,
        client_secret=client_secret,
        cache_handler=MemoryCacheHandler(),
        requests_timeout=config.timeout,
    )
    auth.OAUTH_TOKEN_URL = config.auth_url
    client = spotipy.Spotify(
        auth_manager=auth,
        requests_timeout=config.timeout,
        retries=config.retries,
        status_retries=config.retries,
        backoff_factor=0.5,
    )
    client.prefix = config.api if config.api.endswith("/") else config.api + "/"
    return client


# ---------------------------------------------------------------------------------------------
# Listing


def map_genres(artist_genres: list[str], genre_map: dict[str, list[str]]) -> str | None:
    """Project genre of a track from its artists' Spotify genres (most votes; ties: map order)."""
    votes: Counter[str] = Counter()
    for spotify_genre in artist_genres:
        text = f" {re.sub(r'[^a-z0-9]+', ' ', spotify_genre.lower())} "
        for genre, keywords in genre_map.items():
            if any(f" {k.lower().strip()} " in text for k in keywords):
                votes[genre] += 1
                break
    if not votes:
        return None
    order = list(genre_map)
    return max(votes, key=lambda g: (votes[g], -order.index(g)))


def _status(err: Exception) -> int | None:
    return getattr(err, "http_status", None)


def _short(err: Exception) -> str:
    text = getattr(err, "msg", None) or str(err)
    return " ".join(str(text).split())[:200]


class _Lister:
    """Collects tracks, features, genres and previews; every problem becomes one message."""

    def __init__(self, config: SpotifyConfig) -> None:
        self.config = config
        self.listing = SourceListing()
        self.notes: Counter[str] = Counter()
        self.tracks: dict[str, dict] = {}  # spotify id -> track object
        self.entries: list[tuple[str, str]] = []  # (spotify id, mood), in listing order

    def message(self, text: str) -> None:
        self.listing.messages.append(text)

    def run(self) -> SourceListing:
        client = make_client(self.config)
        with quiet_spotipy():
            try:
                for mood, sources in self.config.moods.items():
                    singles = []
                    for source in sources:
                        match = _TRACK_URL.search(str(source))
                        if match:
                            singles.append(match.group(1))
                        else:
                            self._playlist(client, mood, str(source))
                    self._singles(client, mood, singles)
                ids = list(dict.fromkeys(track_id for track_id, _ in self.entries))
                features = self._features(client, ids)
                genres = self._genres(client, ids)
            except SpotifyOauthError as err:
                raise SourceError(
                    f"spotify: the token endpoint refused the client credentials "
                    f"({getattr(err, 'error', None) or 'error'}); check SPOTIPY_CLIENT_ID/SECRET"
                ) from None
            except requests.exceptions.RequestException as err:
                raise SourceError(f"spotify: cannot reach the API ({type(err).__name__})") from None
        self._items(ids, features, genres)
        self.listing.notes.update(self.notes)
        return self.listing

    def _playlist(self, client: spotipy.Spotify, mood: str, source: str) -> None:
        try:
            page = client.playlist_items(
                source, market=self.config.market, additional_types=("track",), limit=100
            )
            while page:
                for entry in page.get("items") or []:
                    self._add(entry.get("track") or entry.get("item"), mood)
                page = client.next(page) if page.get("next") else None
        except SpotifyException as err:
            status = _status(err)
            self.notes["playlists unavailable"] += 1
            if status == 404:
                self.message(
                    f"spotify: playlist {source} ({mood}) not found (404). Spotify-owned and "
                    f"editorial playlists return 404 to apps created after 2024-11-27; use a "
                    f"user-made playlist, or {OFFLINE_HINT}. Other playlists go on."
                )
            else:
                self.message(
                    f"spotify: playlist {source} ({mood}) failed (HTTP {status}: {_short(err)}); "
                    "other playlists go on"
                )

    def _singles(self, client: spotipy.Spotify, mood: str, ids: list[str]) -> None:
        for start in range(0, len(ids), 50):
            batch = ids[start : start + 50]
            try:
                found = client.tracks(batch, market=self.config.market).get("tracks") or []
            except SpotifyException as err:
                self.message(f"spotify: tracks lookup failed (HTTP {_status(err)}: {_short(err)})")
                continue
            for track in found:
                self._add(track, mood)

    def _add(self, track: dict | None, mood: str) -> None:
        # Local files, podcast episodes and tracks gone from the catalogue have no usable id.
        kind = (track or {}).get("type") or "track"
        if not track or track.get("is_local") or not track.get("id") or kind != "track":
            self.notes["local or unavailable entries"] += 1
            return
        self.tracks.setdefault(track["id"], track)
        self.entries.append((track["id"], mood))

    def _features(self, client: spotipy.Spotify, ids: list[str]) -> dict[str, dict]:
        features: dict[str, dict] = {}
        if not self.config.audio_features:
            return features
        for start in range(0, len(ids), 100):
            try:
                batch = client.audio_features(ids[start : start + 100]) or []
            except SpotifyException as err:
                if _status(err) == 403:
                    self.message(
                        "spotify: audio-features refused (403): Spotify closed this endpoint to "
                        "apps created after 2024-11-27, so rows keep their mood without features. "
                        "For feature targets use an offline table: the csv source (e.g. a "
                        "Kaggle-style Spotify dump) or the fma source (Echo Nest features)."
                    )
                    self.notes["audio-features refused (403)"] += 1
                    return features
                self.message(
                    f"spotify: audio-features failed (HTTP {_status(err)}: {_short(err)}); "
                    "these rows keep their mood without features"
                )
                continue
            for entry in batch:
                if entry and entry.get("id"):
                    features[entry["id"]] = entry
        return features

    def _genres(self, client: spotipy.Spotify, ids: list[str]) -> dict[str, str | None]:
        if not self.config.genre_map:
            return {}
        artists = list(
            dict.fromkeys(
                a["id"] for t in ids for a in self.tracks[t].get("artists") or [] if a.get("id")
            )
        )
        artist_genres: dict[str, list[str]] = {}
        for start in range(0, len(artists), 50):
            try:
                found = client.artists(artists[start : start + 50]).get("artists") or []
            except SpotifyException as err:
                self.message(
                    f"spotify: artists lookup failed (HTTP {_status(err)}: {_short(err)}); "
                    "genres left empty for those tracks"
                )
                continue
            for artist in found:
                if artist and artist.get("id"):
                    artist_genres[artist["id"]] = list(artist.get("genres") or [])
        return {
            t: map_genres(
                [
                    g
                    for a in self.tracks[t].get("artists") or []
                    for g in artist_genres.get(a.get("id"), [])
                ],
                self.config.genre_map,
            )
            for t in ids
        }

    def _items(self, ids: list[str], features: dict[str, dict], genres: dict) -> None:
        deezer = _Deezer(self.config) if self.config.deezer.enabled else None
        previews: dict[str, tuple[str | None, str | None]] = {}
        for spotify_id in ids:
            track = self.tracks[spotify_id]
            url = track.get("preview_url")
            if url:
                previews[spotify_id] = (url, "spotify")
                continue
            self.notes["no spotify preview"] += 1
            found = deezer.find(track) if deezer else None
            previews[spotify_id] = (found, "deezer") if found else (None, None)
            if found:
                self.notes["deezer previews"] += 1
        missing = self.notes["no spotify preview"]
        if missing:
            fallback = (
                f"Deezer found {self.notes['deezer previews']} of them"
                if deezer
                else "enable the Deezer fallback (deezer: {enabled: true})"
            )
            self.message(
                f"spotify: {missing} of {len(ids)} tracks have no preview_url (Spotify stopped "
                f"serving previews to apps created after 2024-11-27); {fallback}, or use the csv "
                "or folder source with your own audio. Tracks without audio are listed in "
                "skipped.csv."
            )
        for spotify_id, mood in self.entries:
            track = self.tracks[spotify_id]
            entry = features.get(spotify_id) or {}
            artists = track.get("artists") or []
            url, provider = previews[spotify_id]
            track_id = f"{self.config.id_prefix}{spotify_id}"
            row: dict[str, object] = {
                "mood": mood,
                "genre": genres.get(spotify_id),
                "artist": artists[0].get("name") if artists else None,
                "provider": provider,
                **{name: entry.get(name) for name in FEATURES},
            }
            self.listing.items.append(
                Item(
                    track_id=track_id,
                    row=row,
                    url=url,
                    file_id=track_id,
                    name=spotify_id,
                    no_audio="no preview (Spotify preview_url is null"
                    + (", none on Deezer)" if deezer else "; Deezer fallback off)"),
                )
            )


class _Deezer:
    """Deezer's public API: a track by ISRC, else a search by artist and title."""

    def __init__(self, config: SpotifyConfig) -> None:
        self.api = config.deezer.api.rstrip("/")
        check_url(self.api)
        self.session = make_session(config.download)
        self.timeout = config.download.timeout

    def _get(self, path: str, **params: str) -> dict:
        try:
            response = self.session.get(f"{self.api}/{path}", params=params, timeout=self.timeout)
            data = response.json() if response.ok else {}
        except (requests.exceptions.RequestException, ValueError):
            return {}
        return data if isinstance(data, dict) and "error" not in data else {}

    def find(self, track: dict) -> str | None:
        isrc = (track.get("external_ids") or {}).get("isrc")
        if isrc:
            preview = self._get(f"track/isrc:{isrc}").get("preview")
            if preview:
                return str(preview)
        artists = track.get("artists") or []
        artist = artists[0].get("name", "") if artists else ""
        title = track.get("name") or ""
        if not (artist and title):
            return None
        results = self._get("search", q=f'artist:"{artist}" track:"{title}"').get("data") or []
        for result in results:
            name = ((result.get("artist") or {}).get("name") or "").casefold()
            if name == artist.casefold() and result.get("preview"):
                return str(result["preview"])
        return None


def list_items(config: SpotifyConfig) -> SourceListing:
    """Page through the configured playlists and collect labels, features and preview URLs."""
    return _Lister(config).run()


def _downloader(config: SpotifyConfig):  # type: ignore[no-untyped-def]
    return downloader(config.download)


build = run_source(SpotifyConfig, list_items, "spotify", downloader=_downloader)
