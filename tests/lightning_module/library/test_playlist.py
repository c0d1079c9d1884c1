"""Playlists: real #EXTINF lines from the files' tags (or their names), UTF-8, .m3u8 names."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.id3 import TIT2

from lightning_module.library.playlist import encoding_note, playlist_path, track_info, write_m3u
from lightning_module.library.tag_fields import open_tags
from tests.lightning_module.library.formats import make_file


def test_extinf_lines_hold_duration_artist_and_title(tmp_path: Path) -> None:
    tagged = make_file(tmp_path, "mp3_v24", stem="tagged")  # TPE1 "An artist", TIT2 "A title"
    flac = make_file(tmp_path, "flac", stem="björk")
    tags = open_tags(flac)
    tags.write("ARTIST", {"values": ["Björk", "Guest\nline"]})  # a newline must not split a line
    tags.write("TITLE", {"values": ["Jóga"]})
    tags.save(flac)
    wav = make_file(tmp_path, "wav", stem="wav_title_only")  # ID3 chunk, no easy view
    wav_tags = open_tags(wav)
    wav_tags.audio.add_tags()
    wav_tags.audio.tags.add(TIT2(encoding=3, text=["Only a title"]))
    wav_tags.save(wav)
    bare = make_file(tmp_path, "ogg", stem="no tags")
    m4a = make_file(tmp_path, "m4a", stem="m4a")
    assert track_info(tagged) == (2, "An artist - A title")  # 1.5 s rounds to 2
    assert track_info(flac) == (2, "Björk, Guest line - Jóga")
    assert track_info(wav) == (2, "Only a title")
    assert track_info(bare) == (2, "no tags")
    assert track_info(m4a)[1] == "m4a"

    playlist = write_m3u(tmp_path / "list.m3u8", [tagged, flac, tmp_path / "gone.mp3"])
    assert playlist.read_bytes().decode("utf-8").splitlines() == [
        "#EXTM3U",
        "#EXTINF:2,An artist - A title",
        "tagged.mp3",
        "#EXTINF:2,Björk, Guest line - Jóga",
        "björk.flac",
        "#EXTINF:-1,gone",  # unreadable: unknown duration, its name
        "gone.mp3",
    ]


def test_playlist_names(tmp_path: Path) -> None:
    assert playlist_path(tmp_path / "like") == tmp_path / "like.m3u8"
    assert playlist_path("a.M3U8") == Path("a.M3U8") and playlist_path("b.m3u") == Path("b.m3u")
    with pytest.raises(ValueError, match=r"c\.pls: a playlist is written as \.m3u8"):
        playlist_path("c.pls")
    assert encoding_note("x.m3u8") is None
    assert "UTF-8" in (encoding_note("x.m3u") or "")
