"""A Spotify Web API stand-in (token endpoint, playlist items with paging, tracks, artists,
audio-features, preview hosting) and a Deezer stand-in, served by :class:`LocalServer`."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tests.datamodules.sources.http_server import LocalServer, file_route, send, send_json

CLIENT_ID = "test-client-id-1234"
CLIENT_SECRET = "test-client-secret-5678"
TOKEN = "test-access-token-9999"


@dataclass
class FakeTrack:
    id: str
    name: str
    artist_id: str
    artist: str
    isrc: str
    preview: bool = True  # Spotify serves a preview_url
    features: dict = field(default_factory=dict)


def spotify_config(server: LocalServer, **options) -> dict:
    """Config keys that point the spotify source (and real spotipy) at ``server``."""
    return {
        "api": server.url("/v1/"),
        "auth_url": server.url("/api/token"),
        "retries": 3,
        "timeout": 5,
        "deezer": {"enabled": False, "api": server.url("/deezer")},
        "download": {"workers": 2, "retries": 3, "backoff": 0.01, "timeout": 5},
        "progress": False,
        **options,
    }


class FakeSpotify:
    """Registers the Spotify and Deezer routes on ``server`` for the given catalogue."""

    def __init__(
        self,
        server: LocalServer,
        tracks: list[FakeTrack],
        playlists: dict[str, list[str]],
        artist_genres: dict[str, list[str]],
        mp3: bytes,
        page_size: int = 2,
    ) -> None:
        self.server = server
        self.tracks = {t.id: t for t in tracks}
        self.playlists = playlists
        self.artist_genres = artist_genres
        self.page_size = page_size
        self.features_forbidden = False
        self.deezer_isrc: dict[str, str] = {}  # isrc -> preview path
        self.deezer_search: dict[tuple[str, str], str] = {}  # (artist, title) -> preview path
        self.preview_delay = 0.0
        routes = server.routes
        routes["/api/token"] = self.token
        for playlist_id in playlists:
            routes[f"/v1/playlists/{playlist_id}/items"] = self.playlist_items
        routes["/v1/tracks/"] = self.tracks_route
        routes["/v1/artists/"] = self.artists_route
        routes["/v1/audio-features/"] = self.features_route
        routes["/deezer/search"] = self.deezer_search_route
        for track in tracks:
            routes[f"/previews/{track.id}.mp3"] = self.delayed(file_route(mp3))
            routes[f"/deezer/track/isrc:{track.isrc}"] = self.deezer_track_route(track.isrc)
            routes[f"/deezer/previews/{track.id}.mp3"] = file_route(mp3)

    def delayed(self, route):
        def wrapper(handler, query):
            time.sleep(self.preview_delay)
            route(handler, query)

        return wrapper

    # --- Spotify
    def token(self, handler, query):
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if handler.headers.get("Authorization") != f"Basic {expected}" or query.get(
            "grant_type"
        ) != ["client_credentials"]:
            send_json(
                handler, {"error": "invalid_client", "error_description": "Invalid client"}, 400
            )
            return
        send_json(handler, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})

    def authorised(self, handler) -> bool:
        if handler.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        send_json(handler, {"error": {"status": 401, "message": "Invalid access token"}}, 401)
        return False

    def track_object(self, track_id: str) -> dict:
        t = self.tracks[track_id]
        return {
            "id": t.id,
            "type": "track",
            "name": t.name,
            "is_local": False,
            "artists": [{"id": t.artist_id, "name": t.artist}],
            "external_ids": {"isrc": t.isrc},
            "preview_url": self.server.url(f"/previews/{t.id}.mp3") if t.preview else None,
        }

    def playlist_items(self, handler, query):
        if not self.authorised(handler):
            return
        playlist_id = handler.path.split("/")[3]
        entries = self.playlists[playlist_id]
        offset = int(query.get("offset", ["0"])[0])
        limit = min(int(query.get("limit", ["100"])[0]), self.page_size)
        items = []
        for entry in entries[offset : offset + limit]:
            if entry == "local":
                items.append({"track": {"id": None, "is_local": True, "name": "a local file"}})
            else:
                items.append({"track": self.track_object(entry)})
        following = None
        if offset + limit < len(entries):
            following = self.server.url(
                f"/v1/playlists/{playlist_id}/items?"
                + urlencode({"offset": offset + limit, "limit": limit})
            )
        send_json(handler, {"items": items, "next": following, "total": len(entries)})

    def tracks_route(self, handler, query):
        if self.authorised(handler):
            ids = query["ids"][0].split(",")
            send_json(
                handler,
                {"tracks": [self.track_object(i) if i in self.tracks else None for i in ids]},
            )

    def artists_route(self, handler, query):
        if self.authorised(handler):
            ids = query["ids"][0].split(",")
            found = [{"id": i, "genres": self.artist_genres.get(i, [])} for i in ids]
            send_json(handler, {"artists": found})

    def features_route(self, handler, query):
        if not self.authorised(handler):
            return
        if self.features_forbidden:
            send_json(handler, {"error": {"status": 403, "message": "Forbidden"}}, 403)
            return
        ids = query["ids"][0].split(",")
        assert len(ids) <= 100
        features = [
            {"id": i, "type": "audio_features", **self.tracks[i].features}
            if i in self.tracks
            else None
            for i in ids
        ]
        send_json(handler, {"audio_features": features})

    # --- Deezer
    def deezer_track_route(self, isrc):
        def route(handler, query):
            path = self.deezer_isrc.get(isrc)
            if path:
                send_json(handler, {"id": 1, "isrc": isrc, "preview": self.server.url(path)})
            else:  # Deezer answers 200 with an error object
                send_json(
                    handler, {"error": {"type": "DataException", "message": "no data", "code": 800}}
                )

        return route

    def deezer_search_route(self, handler, query):
        q = query.get("q", [""])[0]
        data = []
        for (artist, title), path in self.deezer_search.items():
            if f'artist:"{artist}"' in q and f'track:"{title}"' in q:
                data.append(
                    {
                        "id": 2,
                        "title": title,
                        "artist": {"name": artist},
                        "preview": self.server.url(path),
                    }
                )
        send_json(handler, {"data": data, "total": len(data)})


def forbidden(handler, query):
    send(handler, 403, b'{"error": {"status": 403, "message": "Forbidden"}}', "application/json")
