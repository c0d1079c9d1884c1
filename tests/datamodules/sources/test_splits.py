"""Seeded, stratified, group-aware splits and split lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules.sources.splits import SplitConfig, SplitError, SplitLists, assign_splits

rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e", "f", ""]),
        st.sampled_from(["x", "y"]),
        st.sampled_from(["happy", "sad", "calm", None]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.integers(0, 5))
def test_an_artist_never_spans_two_splits_and_every_class_keeps_train_rows(spec, seed):
    rows = [
        {"track_id": str(i), "artist": a, "genre": g, "mood": m} for i, (a, g, m) in enumerate(spec)
    ]
    config = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=seed, group_column="artist")
    splits = assign_splits(rows, config)
    by_artist: dict[str, set[str]] = {}
    for row, split in zip(rows, splits, strict=True):
        if row["artist"]:
            by_artist.setdefault(row["artist"], set()).add(split)
    assert all(len(s) == 1 for s in by_artist.values())
    assert set(splits) <= {"train", "val", "test"}
    assert "train" in splits
    for column in ("genre", "mood"):  # both label columns, though only genre is stratified
        train = {r[column] for r, s in zip(rows, splits, strict=True) if s == "train"}
        assert {r[column] for r in rows} - {None} <= train
    assert splits == assign_splits(list(reversed(rows))[::-1], config)  # a pure function


def test_fractions_are_met_per_class_and_seed_changes_the_split():
    rows = [{"track_id": f"{g}{i}", "genre": g} for g in "abc" for i in range(20)]
    config = SplitConfig(val_fraction=0.2, test_fraction=0.1, seed=1)
    splits = assign_splits(rows, config)
    for genre in "abc":
        mine = [s for r, s in zip(rows, splits, strict=True) if r["genre"] == genre]
        assert (mine.count("train"), mine.count("val"), mine.count("test")) == (14, 4, 2)
    assert splits != assign_splits(rows, SplitConfig(val_fraction=0.2, test_fraction=0.1, seed=2))


def test_file_number_blocks_stay_together():
    rows = [
        {"track_id": f"jazz.{i:05d}", "genre": "jazz", "group_name": f"jazz/jazz.{i:05d}.wav"}
        for i in range(40)
    ]
    config = SplitConfig(
        group_regex=r"(\d+)$", group_block=10, val_fraction=0.25, test_fraction=0.25
    )
    splits = assign_splits(rows, config)
    blocks = [set(splits[b * 10 : (b + 1) * 10]) for b in range(4)]
    assert all(len(b) == 1 for b in blocks)
    assert sorted(b.pop() for b in blocks) == ["test", "train", "train", "val"]


def test_given_splits_are_kept_and_pull_their_group_along():
    rows = [
        {"track_id": "1", "artist": "A", "split": "test"},
        {"track_id": "2", "artist": "A"},
        {"track_id": "3", "artist": "B"},
    ]
    splits = assign_splits(rows, SplitConfig(group_column="artist"))
    assert splits[:2] == ["test", "test"]
    assert splits[2] == "train"


def test_split_lists_match_by_path_or_stem(tmp_path):
    (tmp_path / "train.txt").write_text("# GTZAN style\njazz/jazz.00001.wav\nrock.00002.au\n")
    (tmp_path / "test.txt").write_text("jazz/jazz.00003.wav\n")
    lists = SplitLists({"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})
    assert lists.lookup("jazz/jazz.00001.ogg") == "train"
    assert lists.lookup("genres/jazz/jazz.00003.wav") == "test"
    assert lists.lookup("rock/rock.00002.ogg") == "train"
    assert lists.lookup("rock/rock.00009.ogg") is None
    (tmp_path / "val.txt").write_text("jazz/jazz.00001.wav\n")
    with pytest.raises(SplitError, match="also in the 'train' list"):
        SplitLists({"train": tmp_path / "train.txt", "val": tmp_path / "val.txt"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "leave rows for train"),
        ({"group_regex": r"\d+"}, "capture group"),
        ({"lists": {"dev": "x.txt"}}, "unknown split"),
        ({"unlisted": "maybe"}, "split.unlisted"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(SplitError, match=message) as err:
        SplitConfig(**options)
    assert "\n" not in str(err.value)
