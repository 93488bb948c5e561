"""Backends of the runtime: one interface, several engines (PyTorch, ONNX Runtime, TensorRT)."""

from vgpt.runtime.backends.base import Backend

__all__ = ["Backend"]
