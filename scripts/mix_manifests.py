"""Merge several manifests into one training manifest with group-aware, seeded splits.

python scripts/mix_manifests.py --spec configs/mix/real.yaml --root ../shared/data \
    --out data/real/manifest.csv
python scripts/mix_manifests.py a/manifest.csv b/manifest.csv --out mixed.csv --seed 1 \
    --map genre:Electronic=electronic

Positional manifests are grouped by ``--group-column`` (default ``artist``; rows without one are
their own group) and named after their folder. Skipped rows (unreadable audio, no label) are
listed with a reason in ``<out>.skipped.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules.manifest import ManifestError, write_manifest
from datamodules.sources.mixing import MixSpec, SourceSpec, mix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifests", nargs="*", help="source manifests (in addition to --spec)")
    parser.add_argument("--spec", help="YAML mix spec (see configs/mix/real.yaml)")
    parser.add_argument("--root", default=".", help="folder the spec's relative paths start from")
    parser.add_argument("--out", required=True, help="mixed manifest to write (.csv/.parquet)")
    parser.add_argument("--seed", type=int, help="split seed (overrides the spec)")
    parser.add_argument("--val-fraction", type=float, help="overrides the spec (default 0.15)")
    parser.add_argument("--test-fraction", type=float, help="overrides the spec (default 0.15)")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN:OLD=NEW",
        help="rename a label in every source, e.g. genre:Electronic=electronic (repeatable)",
    )
    parser.add_argument(
        "--group-column", default="artist", help="groups rows of positional manifests"
    )
    parser.add_argument("--no-check-audio", action="store_true", help="skip the header check")
    return parser.parse_args(argv)


def build_spec(args: argparse.Namespace) -> MixSpec:
    if args.spec:
        spec = MixSpec.from_yaml(args.spec)
        spec.sources += [positional_source(m, args.group_column) for m in args.manifests]
    else:
        if not args.manifests:
            raise ValueError("give --spec or at least one manifest")
        spec = MixSpec(sources=[positional_source(m, args.group_column) for m in args.manifests])
    for name in ("seed", "val_fraction", "test_fraction"):
        if getattr(args, name) is not None:
            setattr(spec, name, getattr(args, name))
    for item in args.map:
        column, sep, rest = item.partition(":")
        old, eq, new = rest.partition("=")
        if not (sep and eq and column and old):
            raise ValueError(f"--map {item!r}: expected COLUMN:OLD=NEW")
        spec.labels.setdefault(column, {})[old] = new
    spec.__post_init__()
    return spec


def positional_source(path: str, group_column: str) -> SourceSpec:
    resolved = Path(path).resolve()
    return SourceSpec(
        name=resolved.parent.name, manifest=str(resolved), split={"group_column": group_column}
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = build_spec(args)
        result = mix(spec, root=args.root, check_audio=not args.no_check_audio)
    except (ManifestError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = write_manifest(result.manifest, args.out)
    skipped_path = out.with_name(out.stem + ".skipped.csv")
    result.skipped.to_csv(skipped_path, index=False)
    print(result.summary().to_string())
    print(f"wrote {out} ({len(result.manifest)} rows); skipped {len(result.skipped)}")
    for row in result.skipped.itertuples():
        print(f"  skipped {row.track_id}: {row.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
