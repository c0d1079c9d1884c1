"""The fma source on tiny tracks.csv/echonest.csv files with FMA's real multi-row headers."""

from __future__ import annotations

import pandas as pd
import pytest

from datamodules.manifest import read_manifest
from datamodules.sources.base import SourceError
from datamodules.sources.registry import build_source
from tests.conftest import write_tone

# FMA's tracks.csv: two header rows (a subset of its 52 columns, in its order) + the index-name row.
TRACKS = """\
,album,album,artist,artist,set,set,track,track,track,track
,id,title,id,name,split,subset,duration,genre_top,genres,title
track_id,,,,,,,,,,
2,1,AWOL - A Way Of Life,1,AWOL,training,small,168,Hip-Hop,[21],Food
3,1,AWOL - A Way Of Life,1,AWOL,training,medium,237,Hip-Hop,[21],Electric Ave
5,1,AWOL - A Way Of Life,1,AWOL,training,small,206,Hip-Hop,[21],This World
10,6,Constant Hitmaker,6,Kurt Vile,test,small,161,Pop,[10],Freeway
20,4,Niris,4,Nicky Cook,validation,small,311,,"[76, 103]",Spiritual Level
26,4,Niris,4,Nicky Cook,validation,large,181,,"[76, 103]",Too Happy
134,1,AWOL - A Way Of Life,1,AWOL,training,small,207,Hip-Hop,[21],Street Music
"""

# FMA's echonest.csv: three header rows + the index-name row.
ECHONEST = """\
,echonest,echonest,echonest,echonest,echonest,echonest,echonest,echonest,echonest,echonest
,audio_features,audio_features,audio_features,audio_features,audio_features,audio_features,audio_features,audio_features,metadata,metadata
,acousticness,danceability,energy,instrumentalness,liveness,speechiness,tempo,valence,album_name,artist_name
track_id,,,,,,,,,,
2,0.416675,0.675894,0.634476,0.010628,0.177647,0.15931,165.922,0.576661,AWOL LP,AWOL
3,0.374408,0.528643,0.817461,0.001851,0.10588,0.461818,126.957,0.26924,AWOL LP,AWOL
10,0.95167,0.658179,0.924525,0.965427,0.115474,0.032985,111.562,0.96359,Hitmaker,Kurt Vile
20,0.452217,0.513238,0.56041,0.019443,0.096567,0.525519,114.29,0.894072,Niris,Nicky Cook
"""


def make_fma(root):
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    (meta / "tracks.csv").write_text(TRACKS)
    (meta / "echonest.csv").write_text(ECHONEST)
    for track_id in (2, 3, 5, 10, 20):
        folder = root / "fma_small" / f"{track_id:06d}"[:3]
        folder.mkdir(parents=True, exist_ok=True)
        write_tone(folder / f"{track_id:06d}.mp3", seconds=1.2, sr=16000)
    # 000134.mp3 exists but is broken, like a few files of the real fma_small/fma_medium.
    (root / "fma_small" / "000" / "000134.mp3").write_bytes(b"ID3\x03\x00\x00\x00" + b"\x00" * 64)
    return root


def test_fma_genre_echonest_features_and_fma_split(tmp_path):
    root = make_fma(tmp_path)
    config = {
        "metadata_dir": str(root / "fma_metadata"),
        "audio_dir": str(root / "fma_small"),
        "subset": "small",
        "progress": False,
    }
    summary = build_source("fma", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")
    assert sorted(df.index) == ["fma:10", "fma:2", "fma:20", "fma:5"]  # 3 is medium, 26 large
    assert df.at["fma:2", "genre"] == "Hip-Hop" and df.at["fma:10", "genre"] == "Pop"
    assert pd.isna(df.at["fma:20", "genre"])  # no top genre, but features: kept
    assert df.at["fma:2", "energy"] == pytest.approx(0.634476)
    assert df.at["fma:10", "tempo"] == pytest.approx(111.562)
    assert pd.isna(df.at["fma:5", "energy"])  # not in echonest.csv: genre only
    assert df["loudness"].isna().all()
    assert df["split"].to_dict() == {
        "fma:10": "test",
        "fma:2": "train",
        "fma:20": "val",
        "fma:5": "train",
    }
    assert df.at["fma:10", "artist"] == "Kurt Vile"
    assert df.at["fma:2", "audio_path"].endswith("fma_small/000/000002.mp3")
    assert summary.skipped == {"bad audio": 1}
    assert summary.with_features == 3

    medium = build_source(
        "fma", {**config, "subset": "medium", "require_features": True}, tmp_path / "medium"
    )
    rows = read_manifest(tmp_path / "medium" / "manifest.csv")
    assert sorted(rows["track_id"]) == ["fma:10", "fma:2", "fma:20", "fma:3"]
    assert medium.skipped == {"no features": 2}


def test_a_table_without_fma_headers_is_one_line(tmp_path):
    root = make_fma(tmp_path)
    (root / "fma_metadata" / "tracks.csv").write_text("track_id,genre\n2,Rock\n")
    config = {"metadata_dir": str(root / "fma_metadata"), "audio_dir": str(root / "fma_small")}
    with pytest.raises(SourceError, match=r"tracks.csv: no column track/genre_top") as err:
        build_source("fma", config, tmp_path / "out")
    assert "\n" not in str(err.value)
