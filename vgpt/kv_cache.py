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
        self.two_part = False  # attention concatenates past and new keys (see GraphCache)
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


def two_part_attention(q: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, k: torch.Tensor,
                       v: torch.Tensor, bias: torch.Tensor, past_masked: bool) -> torch.Tensor:  # fmt: skip
    """Scaled dot-product attention of q over the cached keys/values followed by the call's own, without
    concatenating them: softmax over the two score blocks shares one running maximum and one
    denominator, so the result equals attention over [past; new] up to fp32 round-off.

    q [B, nh, N, hd]; past_k, past_v [B, nh, P, hd]; k, v [B, nh, N, hd]; bias [N, P + N] additive.
    `past_masked` False skips adding the bias's past block (all zeros: every query sees the whole cache,
    as the clip does in inference, reference section 8)."""
    P = past_k.shape[2]
    q = q * q.shape[-1] ** -0.5
    s_past = q @ past_k.transpose(-1, -2)  # [B, nh, N, P]
    if past_masked:
        s_past = s_past + bias[..., :P]
    s_new = q @ k.transpose(-1, -2) + bias[..., P:]  # [B, nh, N, N]
    top = torch.maximum(s_past.amax(-1, keepdim=True), s_new.amax(-1, keepdim=True))  # [B, nh, N, 1]
    e_past, e_new = torch.exp(s_past - top), torch.exp(s_new - top)
    total = e_past.sum(-1, keepdim=True) + e_new.sum(-1, keepdim=True)  # [B, nh, N, 1]
    return (e_past @ past_v + e_new @ v) / total  # [B, nh, N, hd]


class GraphCache:
    """A duck-typed KV cache over a stacked [layers, 2, B, nkv, L, hd] tensor, for graphs: the past is
    read from the tensor, and what a call writes is recorded and returned stacked the same way.

    `two_part`: attention reads the cached keys/values and the call's own as two parts
    (`two_part_attention`) instead of concatenating them, so an exported step never copies the cache
    into a longer buffer; `past_masked` says whether any query is masked from a cached key."""

    factor_set = None

    def __init__(self, past: torch.Tensor, two_part: bool = False, past_masked: bool = True) -> None:
        self.kv = past
        # One index per (layer, k|v) on a [layers * 2, B, nkv, L, hd] view: an exported graph reads each
        # layer's keys with a single Gather instead of two.
        self.flat = past.flatten(0, 1)
        self.length = past.shape[4]
        self.two_part, self.past_masked = two_part, past_masked
        self.written: list[tuple[torch.Tensor, torch.Tensor]] = []

    @classmethod
    def empty(cls, config: ModelConfig, batch: int, dtype: torch.dtype) -> GraphCache:
        shape = (config.num_hidden_layers, 2, batch, config.num_key_value_heads, 0, config.head_dim)
        return cls(torch.zeros(shape, dtype=dtype))

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flat[2 * layer], self.flat[2 * layer + 1]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.written.append((k, v))

    def advance(self, n: int) -> None:
        pass

    def stacked(self) -> torch.Tensor:
        """What was written, [layers, 2, B, nkv, n, hd]."""
        return torch.stack([torch.stack(kv) for kv in self.written])
