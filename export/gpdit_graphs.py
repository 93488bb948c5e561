"""GPDiT's exact rolling window as two exported graphs (docs/gpdit.md section 4; vgpt.frame_ring).

Under the lightweight mask a clean frame's keys and values depend on that frame alone, so a live stream
keeps a ring of the newest M frames' keys and values and slides it by computing only the new frame:

- `FrameGraph` ("frame"): one clean frame's latents [1, 1, C, h, w] -> its keys and values, computed alone
  at one canonical place (window frame 0: positions 0 .. block - 1): `frame_kv` [layers, 2, 1, nkv, block,
  hd]. The runtime binds its output straight into the ring's slot of the oldest frame.
- `RingGraph` ("ring"): the ring [M, layers, 2, 1, nkv, block, hd] (slot-major, so that each slot is one
  contiguous block a frame graph writes in place) and `oldest` [1] (the slot of the oldest frame) -> the
  window as the KV cache the denoising step reads, in window order, each frame's keys rotated from the
  canonical place to its window place (frame j: + j * block) when read. The rotation tables are
  constants of the layout; the slot order is a Gather by (oldest + j) mod M.

Nothing is rotated twice and nothing accumulates, so the window read after any number of shifts equals
prefill of the same frames to fp32 round-off (tests/export/test_gpdit_export.py: 1,000 shifts). The
denoising step is the family's ordinary `denoise` graph.
"""

from __future__ import annotations

import torch
from torch import nn

from vgpt.forward import forward_call
from vgpt.kv_cache import GraphCache
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.predictors import inference_calls
from vgpt.rope import rotate_by_offsets
from vgpt.tokens import build_sequence, history_frames


class FrameGraph(nn.Module):
    def __init__(self, model: VideoGPT, layout: Layout) -> None:
        super().__init__()
        self.model = model
        factor_set = inference_calls(model.config, layout.history_frames, layout.clip_frames,
                                     layout.tokens_per_frame).factor_set  # fmt: skip
        # The call vgpt.frame_ring.FrameRing runs for every observed frame: one clean frame at window frame 0.
        seq = build_sequence(history_frames(1), layout.tokens_per_frame)
        self.call = forward_call(model.config, seq, factor_set=factor_set)

    @classmethod
    def of(cls, c) -> FrameGraph:  # c: vgpt.export.graphs.GraphContext
        return cls(c.model, c.layout)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        cache = GraphCache.empty(self.model.config, latents.shape[0], self.model.dtype)
        self.model(self.call, clean=latents, cache=cache, write_cache=True)
        return cache.stacked()  # [layers, 2, 1, nkv, block, hd]


class RingGraph(nn.Module):
    def __init__(self, model: VideoGPT, layout: Layout) -> None:
        super().__init__()
        self.config, self.frames, self.block = model.config, layout.history_frames, layout.block
        self.factor_set = inference_calls(model.config, layout.history_frames, layout.clip_frames,
                                          layout.tokens_per_frame).factor_set  # fmt: skip
        self.register_buffer("window", torch.arange(self.frames), persistent=False)

    @classmethod
    def of(cls, c) -> RingGraph:  # c: vgpt.export.graphs.GraphContext
        return cls(c.model, c.layout)

    def forward(self, ring: torch.Tensor, oldest: torch.Tensor) -> torch.Tensor:
        return read_ring(ring, oldest, self.window, self.config, self.factor_set, self.block)


def read_ring(ring: torch.Tensor, oldest: torch.Tensor, window: torch.Tensor, config, factor_set, block: int):
    """ring [M, layers, 2, B, nkv, block, hd] (slot-major, canonical keys) and oldest [1] int64 -> the window
    [layers, 2, B, nkv, M * block, hd] in window order, frame j's keys rotated by j * block. `window` is
    arange(M)."""
    M = ring.shape[0]
    frames = ring.index_select(0, torch.remainder(oldest + window, M))  # window order
    offsets = (window * block).reshape(M, 1, 1, 1, 1)  # [M, 1, 1, 1, 1] against [M, layers, B, nkv, block]
    keys = rotate_by_offsets(frames[:, :, 0], config, factor_set, offsets)  # [M, layers, B, nkv, block, hd]
    kv = torch.stack([keys, frames[:, :, 1]], dim=2)  # [M, layers, 2, B, nkv, block, hd]
    return kv.permute(1, 2, 3, 4, 0, 5, 6).flatten(4, 5)  # [layers, 2, B, nkv, M * block, hd]
