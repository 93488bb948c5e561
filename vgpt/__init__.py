"""vgpt: Video-GPT (next clip diffusion) from training to deployment.

Importing vgpt never imports onnx, onnxruntime, tensorrt or modelopt, and imports torch only when a
name that needs it is used (so every command's `--help` answers at once).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["PRESETS", "ConfigError", "Layout", "ModelConfig", "VideoGPT", "get_preset"]

_LAZY = {"PRESETS": "vgpt.config", "ConfigError": "vgpt.config", "Layout": "vgpt.layout",
         "ModelConfig": "vgpt.config", "get_preset": "vgpt.config", "VideoGPT": "vgpt.model"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vgpt' has no attribute {name!r}")
