"""The model a beets run uses: the shipped one or a configured file, loaded once, when needed.

Its id (:attr:`ModelRef.base_id`) is known without loading it, so a run over items this model
already tagged loads nothing; the label written into ``audiotagger_model`` adds ``(synthetic
demo)`` for a model trained only on the synthetic demo set (:attr:`ModelRef.label`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning_module.library.tag_sources import SYNTHETIC_NOTE, model_id_of


class ModelLoadError(ValueError):
    """The configured model cannot be loaded; ``str(err)`` is one line naming the file."""


class ModelRef:
    """A model file and how to load it.

    Args:
        path: an ``.onnx`` model or a checkpoint (a checkpoint needs the ``torch`` extra);
            None or empty: the shipped model.
        batch_size: windows per forward pass (files share batches).
        device: ``cpu`` or ``cuda``.
    """

    def __init__(
        self, path: str | os.PathLike | None = None, batch_size: int = 16, device: str = "cpu"
    ) -> None:
        from lightning_module.inference.shipped import default_model

        self.path = Path(path).expanduser() if path else default_model()
        if not self.path.is_file():
            raise FileNotFoundError(f"audiotagger.model: {self.path}: no such model file")
        self.batch_size = batch_size
        self.device = device
        # as write-tags names models: audiotagger-student@1.0.0, or best.onnx sha256:0123456789ab
        self.base_id = model_id_of(self.path)
        self._tagger: Any = None

    @property
    def tagger(self) -> Any:
        """The :class:`~lightning_module.inference.tagger.Tagger`, loaded on first use."""
        if self._tagger is None:
            from lightning_module.inference.errors import ModelError
            from lightning_module.inference.tagger import Tagger

            try:
                self._tagger = Tagger.from_file(
                    self.path, device=self.device, batch_size=self.batch_size
                )
            except (*ModelError, ImportError, OSError) as err:
                # ImportError: a checkpoint without the torch extra
                raise ModelLoadError(f"audiotagger.model: {_one_line(err)}") from err
        return self._tagger

    @property
    def loaded(self) -> bool:
        return self._tagger is not None

    @property
    def label(self) -> str:
        """What ``audiotagger_model`` records: the id, plus ``(synthetic demo)`` for a model
        trained only on the synthetic demo set (loads the model)."""
        if self.tagger.spec.synthetic_only:
            return f"{self.base_id} {SYNTHETIC_NOTE}"  # ... (synthetic demo)
        return self.base_id

    def made(self, recorded: Any) -> bool:
        """Whether an item's ``audiotagger_model`` says this model tagged it."""
        text = str(recorded or "")
        return text == self.base_id or text.startswith(self.base_id + " (")

    def notes(self) -> list[str]:
        """What a user should read before trusting this model's values (one line each)."""
        from lightning_module.inference.formats.text import model_notes

        return model_notes(self.tagger.spec)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
