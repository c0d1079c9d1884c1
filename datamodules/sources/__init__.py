"""Label sources: each turns some data into a manifest (see DESIGN.md).

Every source is one module with a ``build(config, out) -> Summary`` function, where ``config``
is the mapping read from its YAML (``configs/sources/*.yaml``) and ``out`` the output folder. The
registry maps a source name to ``"module:function"`` and imports lazily, so e.g. spotipy is only
imported for the ``spotify`` source. Adding a source is one module plus one line here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping

SOURCES: dict[str, str] = {
    "folder": "datamodules.sources.folder:build",
    "labels": "datamodules.sources.labels:build",
    "csv": "datamodules.sources.csv_tables:build",
    "fma": "datamodules.sources.fma:build",
    "spotify": "datamodules.sources.spotify:build",
    "musicnn": "datamodules.sources.musicnn:build",
}


def source_names() -> list[str]:
    """Registered source names, sorted."""
    return sorted(SOURCES)


def get_builder(name: str) -> Callable[[Mapping[str, object] | None, str | os.PathLike], object]:
    """The ``build(config, out)`` function of source ``name``.

    Raises:
        KeyError: one line listing the known sources.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r} (known: {', '.join(source_names())})")
    module, _, function = SOURCES[name].partition(":")
    return getattr(importlib.import_module(module), function)


def build_source(name: str, config: Mapping[str, object] | None, out: str | os.PathLike) -> object:
    """Build source ``name`` with ``config`` into folder ``out``; returns the source's summary."""
    return get_builder(name)(config, out)
