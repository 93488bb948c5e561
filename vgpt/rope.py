"""Rotary position embedding with LongRoPE scaling, as the released Phi-3 backbone computes it.

All tables are computed in fp32 from plain position ids; the model casts them to its dtype only
when rotating. Reference: videogpt-reference.md section 2.
"""

from __future__ import annotations

from typing import Literal

import torch

from vgpt.config import ModelConfig

FactorSet = Literal["long", "short"]


def select_factor_set(config: ModelConfig, max_position: int) -> FactorSet:
    """Which LongRoPE factors a call uses, given the largest position id of that call.

    The released inference asks the rotary embedding for length 5000 whatever the real length,
    which always selects the long set ("long" policy). Stock Phi-3 picks the long set only when
    the largest position id reaches original_max_position_embeddings ("length" policy).
    """
    if config.rope_factor_policy == "long":
        return "long"
    return "long" if max_position >= config.original_max_position_embeddings else "short"


def inverse_frequencies(config: ModelConfig, factor_set: FactorSet) -> torch.Tensor:
    """1 / (factor_i * theta^(2i/head_dim)) for i < head_dim/2, fp32. Shape [hd/2]."""
    factors = config.rope_long_factor if factor_set == "long" else config.rope_short_factor
    hd = config.head_dim
    exponent = torch.arange(0, hd, 2, dtype=torch.float32) / hd
    return 1.0 / (torch.tensor(factors, dtype=torch.float32) * config.rope_theta**exponent)


def rope_tables(
    config: ModelConfig, positions: torch.Tensor, factor_set: FactorSet
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for `positions` ([..., L] integers), each [..., L, hd] fp32.

    Both are multiplied by LongRoPE's attention factor; the two halves repeat the frequencies
    (rotate-half convention).
    """
    inv_freq = inverse_frequencies(config, factor_set).to(positions.device)
    freqs = positions.to(torch.float32)[..., None] * inv_freq  # [..., L, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [..., L, hd]
    scale = config.rope_attention_factor
    return emb.cos() * scale, emb.sin() * scale


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, nh, L, hd] by tables [L, hd] (or [B, 1, L, hd]), in x's dtype."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


def shift_rotary(x: torch.Tensor, config: ModelConfig, factor_set: FactorSet, delta: int) -> torch.Tensor:
    """Move keys already rotated at positions p to positions p + delta: rotations compose, and the
    LongRoPE factor scaled the rotated keys once already, so the extra rotation is unscaled."""
    inv_freq = inverse_frequencies(config, factor_set).to(x.device)
    angle = torch.cat([inv_freq, inv_freq]) * float(delta)  # [hd]
    return apply_rotary(x, torch.cos(angle), torch.sin(angle))


def rotate_by_offsets(
    x: torch.Tensor, config: ModelConfig, factor_set: FactorSet, offsets: torch.Tensor
) -> torch.Tensor:
    """`shift_rotary` with one offset per row: x [..., L, hd] rotated (unscaled) by the integer offsets
    [..., L], broadcast against x's leading dimensions."""
    inv_freq = inverse_frequencies(config, factor_set).to(x.device)
    angle = offsets.to(torch.float32)[..., None] * torch.cat([inv_freq, inv_freq])  # [..., L, hd]
    return apply_rotary(x, torch.cos(angle), torch.sin(angle))
