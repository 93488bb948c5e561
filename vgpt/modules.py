"""Building blocks of Video-GPT: the Phi-3 decoder and the embedders/head around it.

Parameter names equal the released checkpoint's keys (reference section 8), so a released state
dict loads with no renaming. A GPDiT model with rotation time conditioning (vgpt.time_rotation) passes
each token's rotation to every layer and to the head, and its head has no adaLN modulation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vgpt.config import ModelConfig
from vgpt.kv_cache import KVCache, two_part_attention
from vgpt.masks import QueryMask, attend
from vgpt.rope import apply_rotary
from vgpt.time_rotation import rotate_features

# Each token's (cos theta, sin theta), each [B, L, 1], for rotation time conditioning; None without it.
Rotation = tuple[torch.Tensor, torch.Tensor] | None


class RMSNorm(nn.Module):
    """Phi-3 RMSNorm: normalise in fp32, cast back, then scale."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.nh, self.nkv, self.hd = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        d = config.hidden_size
        # One fused matrix: q, k, v stacked in that order.
        self.qkv_proj = nn.Linear(d, (self.nh + 2 * self.nkv) * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: QueryMask,
        cache: KVCache | None = None,
        layer: int = 0,
        write_cache: bool = False,
    ) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv_proj(x)
        q, k, v = qkv.split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], dim=-1)
        q = q.view(B, N, self.nh, self.hd).transpose(1, 2)  # [B, nh, N, hd]
        k = k.view(B, N, self.nkv, self.hd).transpose(1, 2)  # [B, nkv, N, hd]
        v = v.view(B, N, self.nkv, self.hd).transpose(1, 2)  # [B, nkv, N, hd]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            past_k, past_v = cache.past(layer)
            if write_cache:
                cache.write(layer, k, v)
            if cache.two_part:  # the cached keys and this call's own as two parts, never concatenated
                past_k, past_v, k, v = (self._repeat_kv(t) for t in (past_k, past_v, k, v))
                out = two_part_attention(q, past_k, past_v, k, v, mask.bias, cache.past_masked)  # [B, nh, N, hd]
                return self.o_proj(out.transpose(1, 2).reshape(B, N, self.nh * self.hd))  # [B, N, D]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)  # [B, nkv, Lk, hd]
        k, v = self._repeat_kv(k), self._repeat_kv(v)  # [B, nh, Lk, hd]
        out = attend(q, k, v, mask)  # [B, nh, N, hd]
        return self.o_proj(out.transpose(1, 2).reshape(B, N, self.nh * self.hd))  # [B, N, D]

    def _repeat_kv(self, x: torch.Tensor) -> torch.Tensor:
        """Grouped-query attention: [B, nkv, L, hd] -> [B, nh, L, hd], each key head repeated per group."""
        return x if self.nkv == self.nh else x.repeat_interleave(self.nh // self.nkv, dim=1)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        # One fused matrix: gate first, then up.
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(up * F.silu(gate))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin, mask: QueryMask, cache=None, layer=0, write_cache=False,
                rotation: Rotation = None) -> torch.Tensor:  # fmt: skip
        x = x + self.self_attn(_rotated(self.input_layernorm(x), rotation), cos, sin, mask, cache, layer, write_cache)
        return x + self.mlp(_rotated(self.post_attention_layernorm(x), rotation))


def _rotated(h: torch.Tensor, rotation: Rotation) -> torch.Tensor:
    """The pre-normed features rotated by each token's angle (gpdit-reference.md section 3), or as they are."""
    return h if rotation is None else rotate_features(h, *rotation)


class Backbone(nn.Module):
    """Phi-3 decoder stack without lm_head (checkpoint prefix `llm.`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cos, sin, mask: QueryMask, cache: KVCache | None = None, write_cache: bool = False,
                rotation: Rotation = None):  # fmt: skip
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, cache, i, write_cache, rotation)
        return self.norm(x)


class PatchEmbed(nn.Module):
    """Conv2d(C -> D, kernel p, stride p); tokens in row-major order of the patch grid."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.latent_channels, config.hidden_size, kernel_size=p, stride=p, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] -> [B, N, D]."""
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, h/p, w/p] -> [B, N, D]


def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos, sin] sinusoid of the raw noise level t in [0, 1] (no x1000 scaling). [..., dim] fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.freq_dim = config.timestep_freq_dim
        d = config.hidden_size
        self.mlp = nn.Sequential(nn.Linear(self.freq_dim, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """[...] noise levels -> [..., D]."""
        emb = timestep_sinusoid(t, self.freq_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)


class FinalLayer(nn.Module):
    """LayerNorm (no affine), adaLN shift/scale from the timestep embedding, linear to p*p*C.

    With rotation time conditioning there is no modulation: the normalised features are rotated by
    each token's angle instead (gpdit-reference.md section 3: "the final norm before the output head").
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.norm_final = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        if config.time_parameters:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.linear = nn.Linear(d, config.patch_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, rotation: Rotation = None) -> torch.Tensor:
        """x [..., N, D] and c [..., D] (time token) or rotation [..., N, 1] each -> [..., N, p*p*C]."""
        if rotation is not None:
            return self.linear(rotate_features(self.norm_final(x), *rotation))
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        x = self.norm_final(x) * (1 + scale[..., None, :]) + shift[..., None, :]
        return self.linear(x)


def sincos_1d(dim: int, coords: torch.Tensor) -> torch.Tensor:
    """[sin, cos] over frequencies 1/10000^(2i/dim), i < dim/2. coords [M] -> [M, dim] (float64)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = coords.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d_table(dim: int, grid: int, base_size: int) -> torch.Tensor:
    """Fixed 2-D table for a grid x grid patch grid, [1, grid*grid, dim], rows in row-major order.

    Coordinates are index * base_size / grid; the first half of the channels encodes the column
    coordinate, the second half the row.
    """
    coords = torch.arange(grid, dtype=torch.float64) * (base_size / grid)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # [grid, grid] each
    emb = torch.cat([sincos_1d(dim // 2, cols.reshape(-1)), sincos_1d(dim // 2, rows.reshape(-1))], dim=1)
    return emb.to(torch.float32)[None]  # [1, grid*grid, dim]


def crop_pos_embed(table: torch.Tensor, grid_size: int, gh: int, gw: int) -> torch.Tensor:
    """Centred gh x gw crop of the [1, grid*grid, D] table -> [gh*gw, D] (row-major)."""
    top, left = (grid_size - gh) // 2, (grid_size - gw) // 2
    spatial = table.reshape(grid_size, grid_size, -1)  # [grid, grid, D]
    return spatial[top : top + gh, left : left + gw].reshape(gh * gw, -1)  # [N, D]


def unpatchify(x: torch.Tensor, gh: int, gw: int, p: int, c: int) -> torch.Tensor:
    """[..., N, p*p*C] -> [..., C, gh*p, gw*p]; tokens row-major, each (p, p, C)."""
    lead = x.shape[:-2]
    x = x.reshape(*lead, gh, gw, p, p, c)  # [..., gh, gw, p, q, C]
    n = len(lead)
    perm = (*range(n), n + 4, n, n + 2, n + 1, n + 3)  # [..., C, gh, p, gw, q]
    return x.permute(perm).reshape(*lead, c, gh * p, gw * p)  # [..., C, h, w]
