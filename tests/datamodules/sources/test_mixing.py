"""Mixing manifests: label unification, masks, skips, and group-aware reproducible splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules.manifest import read_manifest
from datamodules.sources.mixing import MixSpec, SourceSpec, mix, split_rows
from datamodules.sources.splits import SplitConfig
from scripts import mix_manifests
from tests.conftest import write_tone


def _source(folder: Path, rows: list[dict], corrupt: str | None = None) -> Path:
    """A source manifest with real audio (soundfile) for every row, one file corrupt if asked."""
    folder.mkdir(parents=True)
    for row in rows:
        path = folder / row["audio_path"]
        if row["audio_path"] == corrupt:
            path.write_bytes(b"RIFF\x00\x01garbage, not audio" * 10)
        else:
            write_tone(path, seconds=1.0, sr=16000)
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture
def two_sources(tmp_path: Path) -> Path:
    """gtzan-like (genre, numbered files, capitalised labels) + 4q-like (mood, artists)."""
    gtzan = [
        {"track_id": f"g:{g}.{i:05d}", "audio_path": f"{g}.{i:05d}.wav", "genre": g.capitalize()}
        for g in ("rock", "jazz")
        for i in range(12)
    ]
    gtzan.append({"track_id": "g:unlabelled", "audio_path": "unlabelled.wav", "genre": ""})
    moods = [
        {
            "track_id": f"q:{i}",
            "audio_path": f"q{i}.flac",
            "artist": f"Artist {i % 7}",
            "mood": ("happy", "sad")[i % 2],
            "energy": float(i % 2),
        }
        for i in range(20)
    ]
    _source(tmp_path / "gtzan", gtzan, corrupt="rock.00003.wav")
    _source(tmp_path / "mood", moods)
    spec = {
        "seed": 3,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "labels": {"genre": {"Rock": "rock", "Jazz": "jazz"}},
        "sources": [
            {
                "name": "gtzan",
                "manifest": "gtzan/manifest.csv",
                "split": {"group_regex": r"(\d+)$", "group_block": 4},
            },
            {
                "name": "mood4q",
                "manifest": "mood/manifest.csv",
                "split": {"group_column": "artist"},
            },
        ],
    }
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_mix_command_unifies_labels_masks_and_skips_bad_rows(two_sources: Path, capsys) -> None:
    out = two_sources / "out" / "manifest.csv"
    spec = str(two_sources / "mix.yaml")
    code = mix_manifests.main(["--spec", spec, "--root", str(two_sources), "--out", str(out)])
    assert code == 0
    df = read_manifest(out)  # also checks every audio file exists
    assert len(df) == 24 - 1 + 20  # the corrupt file and the unlabelled row are out
    assert set(df["genre"].dropna()) == {"rock", "jazz"}  # capitalised names unified
    assert set(df["source"]) == {"gtzan", "mood4q"}
    mood_rows = df[df["source"] == "mood4q"]
    assert mood_rows["genre"].isna().all() and df.loc[df["source"] == "gtzan", "mood"].isna().all()
    assert df.loc[df["source"] == "gtzan", "energy"].isna().all()  # feature masked for gtzan
    assert set(df["split"]) == {"train", "val", "test"}
    skipped = pd.read_csv(out.with_name("manifest.skipped.csv"))
    reasons = dict(zip(skipped["track_id"], skipped["reason"], strict=True))
    assert set(reasons) == {"g:rock.00003", "g:unlabelled"}
    assert "rock.00003.wav" in reasons["g:rock.00003"]  # the reason names the file
    assert "no genre" in reasons["g:unlabelled"]
    assert "skipped g:rock.00003" in capsys.readouterr().out


def test_mix_is_reproducible_from_the_seed_and_keeps_groups(two_sources: Path) -> None:
    spec = MixSpec.from_yaml(two_sources / "mix.yaml")
    first = mix(spec, root=two_sources).manifest
    again = mix(MixSpec.from_yaml(two_sources / "mix.yaml"), root=two_sources).manifest
    pd.testing.assert_series_equal(first["split"], again["split"])
    spec.seed = 4
    other = mix(spec, root=two_sources).manifest
    assert not first["split"].equals(other["split"])
    gtzan = first[first["source"] == "gtzan"]
    blocks = gtzan["track_id"].str.extract(r"g:(\w+)\.(\d+)").astype({1: int})
    blocks["block"] = blocks[0] + (blocks[1] // 4).astype(str)
    assert (gtzan.groupby(blocks["block"])["split"].nunique() == 1).all()


def test_bad_spec_gives_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: a, manifest: a.csv, split: {group_colum: artist}}\n")
    assert mix_manifests.main(["--spec", str(bad), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "group_colum" in err and "\n" not in err
    with pytest.raises(ValueError, match="unique"):
        MixSpec(sources=[SourceSpec("a", "x.csv"), SourceSpec("a", "y.csv")])


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2", "s3"]),  # source
        st.one_of(st.none(), st.sampled_from([f"artist {i}" for i in range(12)])),
        st.sampled_from(["a", "b", "c"]),  # label
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, seed=st.integers(0, 2**16), val=st.floats(0, 0.4))
def test_an_artist_never_spans_two_splits(rows, seed, val) -> None:
    df = pd.DataFrame(
        {
            "track_id": [f"t{i}" for i in range(len(rows))],
            "audio_path": [f"t{i}.wav" for i in range(len(rows))],
            "source": [r[0] for r in rows],
            "artist": pd.Series([r[1] for r in rows], dtype="string"),
            "genre": [r[2] for r in rows],
        }
    )
    configs = {s: SplitConfig(group_column="artist") for s in ("s1", "s2", "s3")}
    splits = split_rows(df, configs, seed=seed, val=val, test=0.3)
    assert set(splits) <= {"train", "val", "test"}
    with_artist = df["artist"].notna()
    # The same artist in two sources is still one group.
    per_artist = splits[with_artist].groupby(df.loc[with_artist, "artist"].str.casefold()).nunique()
    assert (per_artist == 1).all()
    assert splits.equals(split_rows(df, configs, seed=seed, val=val, test=0.3))
    # Every source with a group of its own keeps rows in train (each stratum's last group is
    # train); a source whose only artists also appear elsewhere follows them (one artist, one
    # split, wins).
    group = df["artist"].str.casefold().fillna(df["track_id"])
    owners = df.groupby(group)["source"].nunique()
    own = set(df.loc[group.map(owners).to_numpy() == 1, "source"])
    assert own <= set(df.loc[splits == "train", "source"])


def test_genre_tags_are_targets_and_survive_the_mix(tmp_path: Path) -> None:
    """A row whose only label is its genre tags is kept; the genre_tag columns reach the mix,
    empty (masked) on the rows of a source without them."""
    tagged = [
        {
            "track_id": f"q:{i}",
            "audio_path": f"q{i}.wav",
            "artist": f"A{i}",
            "genre_tag_Pop/Rock": float(i % 2),
            "genre_tag_R&B": float(i % 3 == 0),
        }
        for i in range(6)
    ]
    tagged.append({"track_id": "q:none", "audio_path": "none.wav", "artist": "A9"})
    plain = [{"track_id": f"g:{i}", "audio_path": f"g{i}.wav", "genre": "rock"} for i in range(4)]
    _source(tmp_path / "q", tagged)
    _source(tmp_path / "g", plain)
    spec = MixSpec(
        sources=[
            SourceSpec("mood4q", str(tmp_path / "q" / "manifest.csv")),
            SourceSpec("gtzan", str(tmp_path / "g" / "manifest.csv")),
        ]
    )
    result = mix(spec)
    df = result.manifest.set_index("track_id")
    assert sorted(df.index) == sorted([f"q:{i}" for i in range(6)] + [f"g:{i}" for i in range(4)])
    assert result.skipped["track_id"].tolist() == ["q:none"]  # no target of any kind
    assert df.loc["q:3", "genre_tag_Pop/Rock"] == 1.0 and df.loc["q:3", "genre_tag_R&B"] == 1.0
    assert df.loc["q:2", ["genre_tag_Pop/Rock", "genre_tag_R&B"]].tolist() == [0.0, 0.0]
    assert df.loc[[f"g:{i}" for i in range(4)], "genre_tag_R&B"].isna().all()
