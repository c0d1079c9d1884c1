"""Build a manifest from a label source.

    python scripts/build_dataset.py SOURCE --out DIR [--config YAML] [--set KEY=VALUE ...]
    python scripts/build_dataset.py configs/sources/gtzan3.yaml --out data/gtzan3

SOURCE is a registered source name, or a YAML config whose ``source:`` key names it. ``--set``
overrides one config key (dotted for nested keys, value parsed as YAML):
``--set root=~/music --set split.seed=3``.
Re-running resumes: finished rows are kept, nothing complete is decoded or downloaded again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from datamodules.sources.registry import SOURCES, build_source, source_names
from lightning_module.teacher.sources import TEACHER_SOURCES

#: Data sources and teachers: every name ``build_dataset.py`` accepts.
REGISTRY = {**SOURCES, **TEACHER_SOURCES}


def load_config(source: str, config: str | None, overrides: list[str]) -> tuple[str, dict]:
    """(source name, config mapping) from the arguments; exits with one line on bad input."""
    data: dict = {}
    if source.endswith((".yaml", ".yml")):
        config, source = source, ""
    if config:
        try:
            data = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SystemExit(f"error: {config}: {' '.join(str(err).split())}") from err
        if not isinstance(data, dict):
            raise SystemExit(f"error: {config}: expected a mapping of options")
    named = data.pop("source", None)
    source = source or named or ""
    if not source:
        raise SystemExit(f"error: {config}: no 'source:' key; pass the source name")
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set {override!r}: expected KEY=VALUE")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return source, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "source", help=f"one of {', '.join(source_names(REGISTRY))}, or a YAML config"
    )
    parser.add_argument("--out", required=True, help="output folder (manifest.csv, audio/, ...)")
    parser.add_argument("--config", help="YAML config of the source (configs/sources/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--manifest", help="input manifest, for sources that label one (musicnn): --set manifest="
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    source, config = load_config(args.source, args.config, args.overrides)
    if args.quiet:
        config["progress"] = False
    if args.manifest:
        config["manifest"] = args.manifest
    try:
        summary = build_source(source, config, args.out, REGISTRY)
    except (KeyError, ValueError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
