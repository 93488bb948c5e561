"""A network's tensors: names, static shapes and dtypes.

One `GraphSpec` per graph (vgpt.export.registry gives each graph's at a layout) drives the ONNX export
(input/output names), the verification inputs, TensorRT profiles (min = opt = max = the static shape) and
the binding plan's buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vgpt.config import ModelConfig
from vgpt.layout import Layout

# 23: fused Attention and RMSNormalization (TensorRT >= 10.15); 18: plain ops (TensorRT >= 10.0).
SUPPORTED_OPSETS = (18, 23)

# Graph names, in the order a bundle holds them.
ENCODER, PREFILL, DENOISE, DECODER, APPEND = "encoder", "prefill", "denoise", "decoder", "append"
# GPDiT's exact rolling window (lightweight mask): one frame's keys/values, and the ring read as a KV cache.
FRAME, RING = "frame", "ring"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, float16, bfloat16, int64

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.numel * (2 if self.dtype in ("float16", "bfloat16") else np.dtype(self.dtype).itemsize)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d["dtype"])


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    def tensor(self, name: str) -> TensorSpec:
        for t in (*self.inputs, *self.outputs):
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no tensor {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphSpec:
        return cls(
            d["name"],
            tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
        )


def kv_cache_shape(config: ModelConfig, layout: Layout) -> tuple[int, ...]:
    """[layers, 2 (k, v), B=1, nkv, M * block, hd]: one buffer that prefill writes and denoise reads."""
    c = config
    return (c.num_hidden_layers, 2, 1, c.num_key_value_heads, layout.history_frames * layout.block, c.head_dim)


def exact_rolling(config: ModelConfig) -> bool:
    """Whether the model's clean keys/values depend on their own frame only (GPDiT's lightweight mask): its
    bundles slide the window exactly with the frame and ring graphs instead of the approximate append."""
    return config.attention_mask == "lightweight"


def layout_name(layout: Layout) -> str:
    return f"m{layout.history_frames}-g{layout.clip_frames}-{layout.latent_height}x{layout.latent_width}"
