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
