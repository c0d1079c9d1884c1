"""The labels source: a folder plus a labels table with a column mapping."""

from __future__ import annotations

import pandas as pd
import pytest

from datamodules.manifest import genre_tag_columns, read_manifest, tag_columns
from datamodules.sources.base import SourceError
from datamodules.sources.registry import build_source
from tests.conftest import SHARED_DATA, write_tone


def make_set(root):
    """Six clips in two subfolders, a table with its own column names, a corrupt clip, a row
    without label, a row whose file is missing and a row with an out-of-range feature."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    rows = []
    for i in range(6):
        rel = f"{'ab'[i % 2]}/clip{i}.wav"
        write_tone(root / rel, seconds=1.2, sr=8000)
        rows.append(
            {
                "ID": f"c{i}",
                "File": rel,
                "Singer": f"artist{i // 2}",
                "Quadrant": ["Q1", "Q2", "Q3"][i % 3],
                "Arousal": [1, 1, -1][i % 3],
                "Style": "Jazz" if i < 3 else "Rock",
                "bpm": 100 + i,
                "calm": 0.1 * i,
            }
        )
    (root / "a" / "broken.wav").write_bytes(b"garbage")
    rows.append({"ID": "bad", "File": "a/broken.wav", "Quadrant": "Q1", "Style": "Jazz"})
    rows.append({"ID": "nolabel", "File": "a/clip0.wav"})
    rows.append({"ID": "gone", "File": "a/missing.wav", "Quadrant": "Q2"})
    rows.append({"ID": "loud", "File": "b/clip1.wav", "Quadrant": "Q2", "bpm": 900})
    pd.DataFrame(rows).to_csv(root / "meta.csv", index=False)
    return root


CONFIG = {
    "labels": "meta.csv",
    "columns": {
        "track_id": "ID",
        "audio_path": "File",
        "artist": "Singer",
        "genre": "Style",
        "mood": "Quadrant",
    },
    "features": {"energy": {"column": "Arousal", "scale": 0.5, "offset": 0.5}, "tempo": "bpm"},
    "extra_columns": {"tag_calm": "calm"},
    "label_map": {
        "mood": {"Q1": "happy", "Q2": "energetic", "Q3": "sad"},
        "genre": {"jazz": "jazz", "rock": "rock"},
    },
    "id_prefix": "t:",
    "split": {"group_column": "artist", "val_fraction": 0.2, "test_fraction": 0.2},
    "progress": False,
}


def test_column_mapping_renaming_and_feature_scaling(tmp_path):
    root = make_set(tmp_path / "set")
    config = {**CONFIG, "root": str(root), "labels": str(root / "meta.csv")}
    summary = build_source("labels", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")
    assert sorted(df.index) == [f"t:c{i}" for i in range(6)] + ["t:loud"]
    assert df.at["t:c0", "mood"] == "happy" and df.at["t:c1", "mood"] == "energetic"
    assert df.at["t:c0", "genre"] == "jazz" and df.at["t:c5", "genre"] == "rock"
    assert df.at["t:c2", "energy"] == 0.0 and df.at["t:c0", "energy"] == 1.0
    assert df.at["t:c4", "tempo"] == 104.0
    assert pd.isna(df.at["t:loud", "tempo"])  # 900 BPM is out of range: dropped, row kept
    assert df.at["t:c3", "tag_calm"] == pytest.approx(0.3)
    assert df.at["t:c1", "artist"] == "artist0"
    assert df.groupby("artist")["split"].nunique().max() == 1
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv").set_index("track_id")["reason"]
    assert skipped.to_dict() == {
        "t:gone": "audio file not found",
        "t:nolabel": "no label",
        "t:bad": "bad audio",
    }
    assert summary.notes == {"feature values dropped": 1}
    assert summary.listed == 10 and summary.with_audio == 7


def test_files_matched_by_track_id_when_there_is_no_path_column(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    for name in ("x1", "x2", "x3"):
        write_tone(root / f"{name}.wav", seconds=1.2, sr=8000)
    pd.DataFrame({"song": ["x1", "x2", "x3", "x4"], "g": ["pop", "pop", "rock", "rock"]}).to_csv(
        root / "labels.csv", index=False
    )
    config = {"root": str(root), "columns": {"track_id": "song", "genre": "g"}, "progress": False}
    summary = build_source("labels", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert sorted(df["track_id"]) == ["x1", "x2", "x3"]
    assert summary.skipped == {"audio file not found": 1}


def test_a_missing_column_or_a_broken_table_is_one_line(tmp_path):
    root = make_set(tmp_path / "set")
    config = {**CONFIG, "root": str(root), "labels": str(root / "meta.csv")}
    config["columns"] = {**CONFIG["columns"], "genre": "Genre"}
    with pytest.raises(SourceError, match=r"no column 'Genre' \(mapped by columns.genre\)") as err:
        build_source("labels", config, tmp_path / "out")
    assert "\n" not in str(err.value)
    (root / "meta.csv").write_bytes(b'ID,File\n"c0,a/clip0.wav\n')
    with pytest.raises(SourceError, match="meta.csv: cannot parse table"):
        build_source(
            "labels",
            {**CONFIG, "root": str(root), "labels": str(root / "meta.csv")},
            tmp_path / "out",
        )


@pytest.mark.skipif(not (SHARED_DATA / "mood4q").is_dir(), reason="shared data absent")
def test_shipped_mood4q_config_on_a_sample_of_the_real_set(tmp_path):
    import yaml

    from tests.conftest import REPO_ROOT

    config = yaml.safe_load((REPO_ROOT / "configs/sources/mood4q.yaml").read_text())
    assert config.pop("source") == "labels"
    sample = pd.read_csv(SHARED_DATA / "mood4q/labels.csv").groupby("quadrant").head(3)
    sample.to_csv(tmp_path / "labels.csv", index=False)
    config.update(
        root=str(SHARED_DATA / "mood4q"), labels=str(tmp_path / "labels.csv"), progress=False
    )
    summary = build_source("labels", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert summary.with_audio == 12
    assert sorted(df["mood"].unique()) == ["calm", "energetic", "happy", "sad"]
    assert set(df["energy"]) == {0.0, 1.0} and set(df["valence"]) == {0.0, 1.0}
    happy = df[df["mood"] == "happy"]
    assert (happy["energy"] == 1.0).all() and (happy["valence"] == 1.0).all()
    # AllMusic genres (configs/sources/mood4q.yaml: genre_tags) as genre_tag_<name> columns.
    columns = genre_tag_columns(df.columns)
    assert columns and set(df[columns].stack().unique()) <= {0.0, 1.0}
    for record, row in zip(
        sample.sort_values("track_id").to_dict("records"),
        df.sort_values("track_id").to_dict("records"),
        strict=True,
    ):
        named = {n.strip() for n in record["allmusic_genres"].split(";") if n.strip()}
        assert {c.removeprefix("genre_tag_") for c in columns if row[c] == 1.0} == named


def test_genre_tags_split_into_columns_with_nan_for_empty_cells(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    cells = ["International; Jazz", "Pop/Rock", "", " ; ;", "R&B ;  Pop/Rock;Pop/Rock", "nan"]
    for i in range(len(cells)):
        write_tone(root / f"x{i}.wav", seconds=1.2, sr=8000)
    table = pd.DataFrame(
        {"song": [f"x{i}" for i in range(len(cells))], "mood": "happy", "genres": cells}
    )
    table.to_csv(root / "labels.csv", index=False)
    config = {
        "root": str(root),
        "columns": {"track_id": "song", "mood": "mood"},
        "genre_tags": {"column": "genres", "separator": ";"},
        "progress": False,
    }
    build_source("labels", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")
    names = ["International", "Jazz", "Pop/Rock", "R&B"]
    assert genre_tag_columns(df.columns) == [f"genre_tag_{n}" for n in names]
    assert tag_columns(df.columns) == []  # genre tags are not teacher tags
    tags = df[[f"genre_tag_{n}" for n in names]]
    assert tags.loc["x0"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert tags.loc["x1"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert tags.loc["x4"].tolist() == [0.0, 0.0, 1.0, 1.0]  # stripped, repeats counted once
    for empty in ("x2", "x3", "x5"):  # empty, separators only, "nan": masked, not an error
        assert tags.loc[empty].isna().all(), empty


def test_genre_tags_option_is_checked(tmp_path):
    root = make_set(tmp_path / "set")
    config = {**CONFIG, "root": str(root), "labels": str(root / "meta.csv")}
    with pytest.raises(SourceError, match=r"no column 'genres' \(mapped by genre_tags.column\)"):
        build_source("labels", {**config, "genre_tags": {"column": "genres"}}, tmp_path / "out")
    with pytest.raises(SourceError, match="genre_tags: expected"):
        build_source("labels", {**config, "genre_tags": {"col": "genres"}}, tmp_path / "out")
    with pytest.raises(SourceError, match="genre_tags: expected"):
        build_source("labels", {**config, "genre_tags": "genres"}, tmp_path / "out")


def test_genre_from_tags_labels_rows_naming_one_known_genre(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    cells = ["Rap", "Rap; Pop/Rock", "Pop/Rock", "", "Country"]
    for i in range(len(cells)):
        write_tone(root / f"x{i}.wav", seconds=1.2, sr=8000)
    table = pd.DataFrame(
        {"song": [f"x{i}" for i in range(len(cells))], "mood": "happy", "genres": cells}
    )
    table.loc[4, "genre_col"] = "folk"  # a genre the table gives wins over the tags
    table.to_csv(root / "labels.csv", index=False)
    config = {
        "root": str(root),
        "columns": {"track_id": "song", "mood": "mood", "genre": "genre_col"},
        "genre_tags": {"column": "genres"},
        "genre_from_tags": {"Rap": "hiphop", "Country": "country"},
        "progress": False,
    }
    build_source("labels", config, tmp_path / "out")
    genre = read_manifest(tmp_path / "out" / "manifest.csv").set_index("track_id")["genre"]
    assert genre["x0"] == "hiphop"
    assert genre[["x1", "x2", "x3"]].isna().all()  # two genres, an unmapped one, none
    assert genre["x4"] == "folk"
    with pytest.raises(SourceError, match="genre_from_tags needs genre_tags"):
        build_source("labels", {**config, "genre_tags": {}}, tmp_path / "out2")


@pytest.mark.skipif(not (SHARED_DATA / "gtzan7").is_dir(), reason="shared data absent")
def test_shipped_gtzan7_config_on_the_real_folder(tmp_path):
    import yaml

    from datamodules.analysis.key import parse_key
    from tests.conftest import REPO_ROOT

    config = yaml.safe_load((REPO_ROOT / "configs/sources/gtzan7.yaml").read_text())
    assert config.pop("source") == "labels"
    table = pd.read_csv(SHARED_DATA / "gtzan7/labels.csv")
    assert len(table) == 69
    # Every annotated key and two clips of each genre: decoding all 69 would cost ~20 s.
    sample = table[table["key"].notna() | table.index.isin(table.groupby("genre").head(2).index)]
    sample = sample.groupby("genre").head(4)
    sample.to_csv(tmp_path / "labels.csv", index=False)
    config.update(
        root=str(SHARED_DATA / "gtzan7"), labels=str(tmp_path / "labels.csv"), progress=False
    )
    summary = build_source("labels", config, tmp_path / "out")
    df = read_manifest(tmp_path / "out" / "manifest.csv")
    assert summary.with_audio == len(df) == len(sample)
    genres = ["blues", "country", "disco", "hiphop", "metal", "pop", "reggae"]
    assert sorted(df["genre"].unique()) == genres
    assert df.groupby("artist")["split"].nunique().max() == 1  # an artist in one split only
    assert df["tempo"].between(40, 250).all()  # listeners' beats for every clip
    keyed = df.dropna(subset=["key"])
    assert len(keyed) > 10
    keys = {parse_key(f"{k} {m}") for k, m in zip(keyed["key"], keyed["mode"], strict=True)}
    assert len(keys) > 5
