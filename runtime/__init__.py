"""vgpt.runtime: the embeddable predictor and its backends; never imports vgpt.training.

The names below load on first use, so that `vgpt-run --help` does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LoadedModel", "NotEnoughHistoryError", "Prediction", "VideoPredictor", "load_model", "load_predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("vgpt.runtime.predictor"), name)
    raise AttributeError(f"module 'vgpt.runtime' has no attribute {name!r}")
