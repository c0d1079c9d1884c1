"""Decoders: a task's averaged output → named values (``Task.decoder`` names one here).

A decoder states the flat fields it writes (the same names in JSON, CSV and file tags), how to
compute them from the task's clip-level probabilities, how to read them back from text, and one
line for the terminal. numpy only: the runtime without torch uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamodules.analysis.key import camelot, tonic_and_mode


@dataclass(frozen=True)
class Decoder:
    """How a task's output becomes named values.

    Attributes:
        fields: flat field name → its type (``str`` or ``float``), in output order.
        decode: (clip-level probabilities over the task's labels, shape (n_labels,)) → values.
        describe: values → one line for the terminal summary.
    """

    fields: Mapping[str, type]
    decode: Callable[[np.ndarray], dict[str, Any]]
    describe: Callable[[Mapping[str, Any]], str]

    def parse(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The fields present (non-empty) in a CSV row or JSON object, typed.

        Raises:
            ValueError: a number field that is not a number (names the field).
        """
        values: dict[str, Any] = {}
        for name, kind in self.fields.items():
            raw = record.get(name)
            if raw in (None, ""):
                continue
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name}: not a {kind.__name__}: {raw!r}") from err
        return values


def decode_key(probabilities: np.ndarray) -> dict[str, Any]:
    """The most probable of the 24 keys (``datamodules.analysis.key.KEY_NAMES`` order): tonic,
    mode, its probability (windows averaged) and its Camelot code."""
    index = int(np.argmax(probabilities))
    tonic, mode = tonic_and_mode(index)
    return {
        "key": tonic,
        "mode": mode,
        "key_confidence": round(float(probabilities[index]), 4),
        "camelot": camelot(index),
    }


def describe_key(values: Mapping[str, Any]) -> str:
    confidence = values.get("key_confidence")
    shown = f" {confidence:.2f}" if confidence is not None else ""
    return f"{values['key']} {values['mode']} ({values['camelot']}){shown}"


#: Decoders by name (``Task.decoder``).
DECODERS: dict[str, Decoder] = {
    "key": Decoder(
        fields={"key": str, "mode": str, "key_confidence": float, "camelot": str},
        decode=decode_key,
        describe=describe_key,
    ),
}
