"""The exact rolling window of GPDiT's lightweight mask: a ring buffer of the last W frames' clean keys/values.

Under the lightweight mask every layer's keys and values of a clean frame depend only on that frame
(gpdit-reference.md section 2; no token mixing outside attention, position only through RoPE, clean
tokens at rotation angle 0). So sliding the window needs no re-prefill: each observed frame runs
through the network alone, once, and its keys and values overwrite the oldest frame's slot.

Positions: RoPE's attention logits depend only on position differences, so every frame is computed at
one canonical place (window frame 0: positions 0 .. block - 1) and its keys are rotated to their slot's
place in the window only when the window is read. Nothing is rotated twice and nothing accumulates, so
the window read after any number of shifts equals a fresh computation of the same frames to fp32
round-off (tests/vgpt/test_frame_ring.py: 1,000 shifts).

The ring is read in slot order, never reordered: slot s holds window frame (s - oldest) mod W, and
its keys carry that frame's positions. A noisy unit attends every key of the history (all three masks),
so the order of the keys in the cache changes nothing but the summation order of the softmax.

Model and state apart: a `FrameRing` is one stream's state; the model it runs is shared.
"""

from __future__ import annotations

import torch

from vgpt.config import ConfigError, ModelConfig
from vgpt.forward import forward_call
from vgpt.kv_cache import GraphCache, KVCache
from vgpt.model import VideoGPT
from vgpt.rope import FactorSet, rotate_by_offsets
from vgpt.tokens import build_sequence, history_frames


class FrameRing:
    def __init__(
        self,
        config: ModelConfig,
        batch: int,
        capacity: int,
        tokens_per_frame: int,
        factor_set: FactorSet,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        if config.attention_mask != "lightweight":
            raise ConfigError(
                f"an exact rolling window needs the lightweight mask; this model's attention_mask is "
                f"{config.attention_mask!r}, whose clean keys depend on earlier frames: re-run the window "
                "through prefill instead (vgpt.predictors.CachedPredictor)"
            )
        if capacity < 1:
            raise ValueError(f"FrameRing capacity={capacity}: must hold at least one frame")
        self.config, self.capacity, self.factor_set = config, capacity, factor_set
        self.tokens_per_frame = tokens_per_frame
        shape = (config.num_hidden_layers, batch, config.num_key_value_heads, capacity, self.block, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # [layers, B, nkv, W, block, hd], canonical
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.count = 0  # frames observed since the ring was made
        # One clean frame alone at window frame 0: the call every observed frame runs.
        self.call = forward_call(config, build_sequence(history_frames(1), tokens_per_frame), factor_set=factor_set)

    @property
    def block(self) -> int:
        return self.tokens_per_frame + 2

    @property
    def held(self) -> int:
        """Frames in the window: the newest min(count, capacity)."""
        return min(self.count, self.capacity)

    def window_index(self) -> torch.Tensor:
        """The window frame (0 = oldest) each held slot holds, in slot order. [held] int64."""
        oldest = self.count % self.capacity if self.count >= self.capacity else 0
        return (torch.arange(self.held) - oldest) % self.capacity

    @torch.no_grad()
    def push(self, model: VideoGPT, frames: torch.Tensor) -> None:
        """Observe clean frames [B, n, C, h, w], oldest first: each runs through the network alone (the n
        frames as one batch of single-frame calls) and takes the slot of the oldest frame held."""
        B, n, C, h, w = frames.shape
        p = self.config.patch_size
        if (h // p) * (w // p) != self.tokens_per_frame or B != self.k.shape[1]:
            raise ValueError(f"frames {tuple(frames.shape)} do not fit this ring: batch {self.k.shape[1]}, "
                             f"{self.tokens_per_frame} tokens per frame")  # fmt: skip
        frames = frames[:, -self.capacity :]  # older frames would be overwritten at once
        n = frames.shape[1]
        if n == 0:
            return
        cfg = self.config
        cache = KVCache(cfg, B * n, self.block, self.k.dtype, self.k.device)
        model(self.call, clean=frames.reshape(B * n, 1, C, h, w), cache=cache, write_cache=True)
        shape = (cfg.num_hidden_layers, B, n, cfg.num_key_value_heads, self.block, cfg.head_dim)
        slots = ((self.count + torch.arange(n)) % self.capacity).to(self.k.device)
        self.k.index_copy_(3, slots, cache.k.view(shape).transpose(2, 3))  # [layers, B, nkv, n, block, hd]
        self.v.index_copy_(3, slots, cache.v.view(shape).transpose(2, 3))
        self.count += n

    def read(self) -> GraphCache:
        """The window as a cache for the denoising step, in slot order, each slot's keys rotated to its
        window frame's positions: [layers, 2, B, nkv, held * block, hd]."""
        held = self.held
        offsets = (self.window_index() * self.block).to(self.k.device)[:, None]  # [held, 1]
        keys = rotate_by_offsets(self.k[:, :, :, :held], self.config, self.factor_set, offsets)
        kv = torch.stack([keys, self.v[:, :, :, :held]], dim=1)  # [layers, 2, B, nkv, held, block, hd]
        return GraphCache(kv.flatten(4, 5))  # [layers, 2, B, nkv, held * block, hd]
