"""A static per-layer KV cache: allocated once for a capacity, written at explicit positions.

Clean keys never depend on noisy tokens (reference section 5), so the keys and values of the
clean history are the same in every denoising step and both guidance branches: caching them is
exact, and so is appending newly observed clean frames while the capacity lasts.
"""

from __future__ import annotations

import torch

from vgpt.config import ModelConfig


class KVCache:
    def __init__(
        self, config: ModelConfig, batch: int, capacity: int, dtype: torch.dtype, device: torch.device | str
    ) -> None:
        shape = (config.num_hidden_layers, batch, config.num_key_value_heads, capacity, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # [layers, B, nkv, cap, hd]
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # tokens written
        self.factor_set: str | None = None  # the LongRoPE set the cached keys were rotated with

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def reset(self) -> None:
        self.length = 0
        self.factor_set = None

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values written so far for `layer`, each [B, nkv, length, hd] (views)."""
        return self.k[layer, :, :, : self.length], self.v[layer, :, :, : self.length]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v [B, nkv, n, hd] right after the current length (committed by `advance`)."""
        n = k.shape[2]
        if self.length + n > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length} + {n} tokens > capacity {self.capacity}")
        self.k[layer, :, :, self.length : self.length + n] = k
        self.v[layer, :, :, self.length : self.length + n] = v

    def advance(self, n: int) -> None:
        self.length += n


class GraphCache:
    """A duck-typed KV cache over a stacked [layers, 2, B, nkv, L, hd] tensor, for graphs: the past is
    read from the tensor, and what a call writes is recorded and returned stacked the same way."""

    factor_set = None

    def __init__(self, past: torch.Tensor) -> None:
        self.kv = past
        self.length = past.shape[4]
        self.written: list[tuple[torch.Tensor, torch.Tensor]] = []

    @classmethod
    def empty(cls, config: ModelConfig, batch: int, dtype: torch.dtype) -> GraphCache:
        shape = (config.num_hidden_layers, 2, batch, config.num_key_value_heads, 0, config.head_dim)
        return cls(torch.zeros(shape, dtype=dtype))

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kv[layer, 0], self.kv[layer, 1]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.written.append((k, v))

    def advance(self, n: int) -> None:
        pass

    def stacked(self) -> torch.Tensor:
        """What was written, [layers, 2, B, nkv, n, hd]."""
        return torch.stack([torch.stack(kv) for kv in self.written])
