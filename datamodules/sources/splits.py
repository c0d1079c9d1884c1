"""Train/val/test assignment: given split lists, or a seeded, stratified, group-aware split.

A *group* is the unit that must never straddle two splits: an artist, or a block of consecutively
numbered files (GTZAN repeats artists in runs of neighbouring file numbers, so ``jazz.00010`` ...
``jazz.00019`` form one group with ``group_regex: '(\\d+)$'`` and ``group_block: 10``). The split is
a pure function of the rows and the seed, so a resumed build ends with the same manifest.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datamodules.manifest import SPLITS


class SplitError(ValueError):
    """A split option that cannot be used; the message is one line naming the option or file."""


@dataclass
class SplitConfig:
    """How rows get their ``split``.

    Attributes:
        val_fraction, test_fraction: share of rows (per stratum) for val and test.
        seed: the split is reproducible from it.
        stratify: label column whose classes are split proportionally (``auto``: genre when any
            row has one, else mood; ``none``: no stratification).
        group_column: rows sharing this column's value (e.g. ``artist``) stay in one split.
        group_regex: applied to the audio file's stem; the first capture group must be digits, which
            are replaced by ``int(digits) // group_block`` to form the group (file-number blocks).
        group_block: block size for ``group_regex``.
        lists: split name -> text file with one audio path per line (e.g. GTZAN's fault-filtered
            ``train_filtered.txt``); a line matches a file by relative path without extension, else
            by file stem.
        unlisted: what happens to files in no list when ``lists`` is set: ``skip`` (listed in
            skipped.csv), ``assign`` (seeded split) or a split name.
    """

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    stratify: str = "auto"
    group_column: str | None = None
    group_regex: str | None = None
    group_block: int = 1
    lists: dict[str, str] = field(default_factory=dict)
    unlisted: str = "skip"

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise SplitError(f"split.{name}: expected a number in [0, 1), got {value!r}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise SplitError("split: val_fraction + test_fraction must leave rows for train")
        if not isinstance(self.group_block, int) or self.group_block < 1:
            raise SplitError(
                f"split.group_block: expected a positive integer, got {self.group_block!r}"
            )
        if self.group_regex is not None:
            try:
                pattern = re.compile(self.group_regex)
            except re.error as err:
                raise SplitError(f"split.group_regex: invalid regular expression ({err})") from err
            if pattern.groups < 1:
                raise SplitError("split.group_regex: needs one capture group around the digits")
        unknown = sorted(set(self.lists) - set(SPLITS))
        if unknown:
            raise SplitError(f"split.lists: unknown split(s) {', '.join(unknown)}")
        if self.unlisted not in ("skip", "assign", *SPLITS):
            raise SplitError(
                f"split.unlisted: expected skip, assign, {', '.join(SPLITS)}; got {self.unlisted!r}"
            )


def _keys(path: str) -> tuple[str, str]:
    """(relative path without extension, file stem) of a path written with / or \\ separators."""
    pure = PurePosixPath(str(path).strip().replace("\\", "/"))
    return str(pure.with_suffix("")).lstrip("./"), pure.stem


class SplitLists:
    """Lookup of a file's split in split-list files (one path per line, ``#`` comments)."""

    def __init__(self, lists: Mapping[str, str | Path]) -> None:
        self.by_path: dict[str, str] = {}
        self.by_stem: dict[str, str] = {}
        for split, list_file in lists.items():
            list_file = Path(list_file)
            if not list_file.is_file():
                raise SplitError(f"{list_file}: split list for {split!r} not found")
            for line in list_file.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                rel, stem = _keys(line)
                for table, key in ((self.by_path, rel), (self.by_stem, stem)):
                    if table.get(key, split) != split:
                        raise SplitError(
                            f"{list_file}: {line!r} is also in the {table[key]!r} list"
                        )
                    table[key] = split

    def __bool__(self) -> bool:
        return bool(self.by_path)

    def lookup(self, relative_path: str) -> str | None:
        """The split of a file given by its path relative to the source root, or None."""
        rel, stem = _keys(relative_path)
        for candidate in (rel, *(rel.split("/", i)[-1] for i in range(1, rel.count("/") + 1))):
            if candidate in self.by_path:
                return self.by_path[candidate]
        return self.by_stem.get(stem)


def group_key(row: Mapping[str, object], config: SplitConfig) -> str:
    """The group a row belongs to; rows without one are their own group (their track id)."""
    if config.group_column:
        value = row.get(config.group_column)
        if isinstance(value, str) and value.strip():
            return f"{config.group_column}:{value.strip().casefold()}"
    if config.group_regex:
        stem = Path(str(row.get("group_name") or row.get("audio_path") or "")).stem
        match = re.search(config.group_regex, stem)
        if match and match.group(1) and match.group(1).isdigit():
            block = int(match.group(1)) // config.group_block
            return f"block:{stem[: match.start(1)]}{block}{stem[match.end(1) :]}"
    return f"track:{row['track_id']}"


def _stratify_column(rows: Sequence[Mapping[str, object]], config: SplitConfig) -> str | None:
    if config.stratify == "none":
        return None
    if config.stratify != "auto":
        return config.stratify
    for column in ("genre", "mood"):
        if any(isinstance(r.get(column), str) and r.get(column) for r in rows):
            return column
    return None


def assign_splits(rows: Sequence[Mapping[str, object]], config: SplitConfig) -> list[str]:
    """A split per row: rows with a ``split`` keep it, the others get a seeded group-aware one.

    Within each stratum (class of the stratify column; a group belongs to its most common class),
    groups are shuffled with a generator seeded by ``(seed, stratum)`` and dealt to test, then val,
    then train, until each holds its share of rows. Every stratum keeps at least one group in train,
    so val/test never hold a class train lacks. A group that already has a given split (e.g. from a
    list) pulls its other rows into that split, so a group still never spans two splits.
    """
    column = _stratify_column(rows, config)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[group_key(row, config)].append(index)
    result: list[str | None] = [r.get("split") if r.get("split") in SPLITS else None for r in rows]
    strata: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        members = groups[key]
        given = Counter(result[i] for i in members if result[i])
        if given:
            split = sorted(given.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            for i in members:
                result[i] = split
            continue
        labels = Counter(
            str(rows[i].get(column))
            for i in members
            if column and isinstance(rows[i].get(column), str)
        )
        stratum = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if labels else ""
        strata[stratum].append(key)
    for stratum, keys in sorted(strata.items()):
        random.Random(f"{config.seed}:{stratum}").shuffle(keys)
        total = sum(len(groups[k]) for k in keys)
        targets = {"test": total * config.test_fraction, "val": total * config.val_fraction}
        counts = {"test": 0, "val": 0}
        for position, key in enumerate(keys):
            size = len(groups[key])
            split = "train"
            if position < len(keys) - 1:  # the last group is always train
                for name in ("test", "val"):
                    # Take the group when that brings the count closer to the target.
                    if counts[name] + size / 2 <= targets[name]:
                        split = name
                        counts[name] += size
                        break
            for i in groups[key]:
                result[i] = split
    _train_sees_every_class(
        rows, groups, result, free=[k for keys in strata.values() for k in keys]
    )
    return [s or "train" for s in result]


def _train_sees_every_class(
    rows: Sequence[Mapping[str, object]],
    groups: Mapping[str, list[int]],
    result: list[str | None],
    free: list[str],
) -> None:
    """Move the smallest assigned group holding a class that train lacks (genre or mood) into
    train, so the manifest always trains: the datamodule refuses a val/test class train never saw.
    Groups whose split was given are never moved."""
    for column in ("genre", "mood"):
        while True:
            in_train = {rows[i].get(column) for i, s in enumerate(result) if s in (None, "train")}
            missing = sorted(
                {
                    str(rows[i].get(column))
                    for i, s in enumerate(result)
                    if s in ("val", "test")
                    and isinstance(rows[i].get(column), str)
                    and rows[i].get(column) not in in_train
                }
            )
            movable = [
                k
                for k in free
                if result[groups[k][0]] != "train"
                and missing
                and any(rows[i].get(column) == missing[0] for i in groups[k])
            ]
            if not movable:
                break
            key = min(movable, key=lambda k: (len(groups[k]), k))
            for i in groups[key]:
                result[i] = "train"
