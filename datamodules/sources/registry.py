"""Label sources: each turns some data into a manifest (how to add one: docs/architecture.md,
"Where to add").

Every source is one module with a ``build(config, out) -> BuildSummary`` function, where
``config`` is the mapping read from its YAML (``configs/sources/*.yaml``) and ``out`` the output
folder. The registry maps a source name to ``"module:function"`` and imports lazily, so e.g.
spotipy is only imported for the ``spotify`` source. Adding a source is one module plus one line
here. Teachers (sources that run a model over a manifest's audio) live with the model, in
``lightning_module/teacher/``; ``scripts/build_dataset.py`` passes both registries.
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
    "features": "datamodules.sources.feature_teacher:build",
}


Builder = Callable[[Mapping[str, object] | None, str | os.PathLike], object]


def source_names(registry: Mapping[str, str] | None = None) -> list[str]:
    """Registered source names (of ``registry``, default :data:`SOURCES`), sorted."""
    return sorted(SOURCES if registry is None else registry)


def get_builder(name: str, registry: Mapping[str, str] | None = None) -> Builder:
    """The ``build(config, out)`` function of source ``name`` in ``registry`` (default
    :data:`SOURCES`).

    Raises:
        KeyError: one line listing the known sources.
    """
    registry = SOURCES if registry is None else registry
    if name not in registry:
        raise KeyError(f"unknown source {name!r} (known: {', '.join(source_names(registry))})")
    module, _, function = registry[name].partition(":")
    return getattr(importlib.import_module(module), function)


def build_source(
    name: str,
    config: Mapping[str, object] | None,
    out: str | os.PathLike,
    registry: Mapping[str, str] | None = None,
) -> object:
    """Build source ``name`` with ``config`` into folder ``out``; returns the source's summary."""
    return get_builder(name, registry)(config, out)
