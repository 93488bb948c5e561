"""Rolling the KV window by one frame without re-running the kept frames (approximate).

An exact cache of a sliding window needs the kept frames re-run: their keys and values were computed
while attending to the frame that is dropped (reference section 5). Rolling keeps them anyway: the
oldest frame's block is dropped, the kept keys are re-rotated one frame earlier (exact for RoPE, whose
rotations compose), and the new frame's keys and values are computed against the kept ones. What is
approximate is only what the kept frames' hidden states remember of the dropped frame.
"""

from __future__ import annotations

import torch

from vgpt.forward import ForwardCall
from vgpt.kv_cache import GraphCache
from vgpt.model import VideoGPT
from vgpt.predictors import append_call
from vgpt.rope import FactorSet, shift_rotary


def roll_window(
    model: VideoGPT,
    kv: torch.Tensor,
    frame: torch.Tensor,
    tokens_per_frame: int,
    factor_set: FactorSet,
    call: ForwardCall | None = None,
) -> torch.Tensor:
    """kv [layers, 2, B, nkv, M*block, hd] of frames 0..M-1 and the latents of a new frame
    [B, 1, C, h, w] -> the cache of frames 1..M at positions 0..M-1, same shape. `call`: the new frame's
    (`append_call(config, M - 1, M, ...)`), made ahead by a graph that is traced."""
    block = tokens_per_frame + 2
    frames = kv.shape[4] // block
    kept = kv[:, :, :, :, block:]  # [layers, 2, B, nkv, (M-1)*block, hd]
    keys = shift_rotary(kept[:, 0], model.config, factor_set, -block)
    past = torch.stack([keys, kept[:, 1]], dim=1)  # [layers, 2, B, nkv, (M-1)*block, hd]
    cache = GraphCache(past)
    call = call or append_call(model.config, frames - 1, frames, tokens_per_frame, factor_set)
    model(call, clean=frame, cache=cache, write_cache=True)
    return torch.cat([past, cache.stacked()], dim=4)
