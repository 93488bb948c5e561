"""The exported networks as torch modules with every layout constant baked in.

- `PrefillGraph`: M clean history latents -> the KV cache of every layer.
- `DenoiseGraph`: one Euler step of the G-frame noisy clip against that cache: both guidance
  branches, x-prediction to velocity, guidance and the update. The schedule is a constant table
  indexed by the `step` input, and the graph outputs `step + 1`: the runtime's loop binds the
  outputs of one step as the inputs of the next and never writes to the device, which is what a
  CUDA graph of the whole loop needs.
- `EncoderGraph` / `DecoderGraph`: the latent codec, one frame in, G frames out.

The plans (masks, positions, LongRoPE set) come from `vgpt.predictors.inference_plans`, so the graphs
compute exactly what the `cached` reference predictor computes.
"""

from __future__ import annotations

import torch
from torch import nn

from vgpt.codecs.base import LatentCodec
from vgpt.config import Layout
from vgpt.model import VideoGPT
from vgpt.predictors import inference_plans
from vgpt.sampler import SamplerConfig, euler_step, guide, schedule, velocity


class _RecordingCache:
    """Duck-typed KV cache for export: an empty past; records what prefill writes."""

    def __init__(self, batch: int, heads: int, head_dim: int, dtype: torch.dtype) -> None:
        self.length = 0
        self.empty = torch.zeros(batch, heads, 0, head_dim, dtype=dtype)
        self.written: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.factor_set = None

    def past(self, layer: int):
        return self.empty, self.empty

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.written.append((k, v))

    def advance(self, n: int) -> None:
        pass


class _InputCache:
    """Duck-typed KV cache for export: the past comes from the `kv_cache` graph input."""

    def __init__(self, kv: torch.Tensor) -> None:
        self.kv = kv  # [layers, 2, B, nkv, Lc, hd]
        self.length = kv.shape[4]

    def past(self, layer: int):
        return self.kv[layer, 0], self.kv[layer, 1]


class PrefillGraph(nn.Module):
    def __init__(self, model: VideoGPT, layout: Layout, sampler: SamplerConfig) -> None:
        super().__init__()
        self.model = model
        self.plans = inference_plans(model.config, layout.history_frames, layout.clip_frames, layout.tokens_per_frame)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        c = self.model.config
        cache = _RecordingCache(history.shape[0], c.num_key_value_heads, c.head_dim, self.model.dtype)
        self.model(self.plans.prefill, clean=history, cache=cache, write_cache=True)
        return torch.stack([torch.stack(kv) for kv in cache.written])  # [layers, 2, B, nkv, Lc, hd]


class DenoiseGraph(nn.Module):
    def __init__(self, model: VideoGPT, layout: Layout, sampler: SamplerConfig) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.plans = inference_plans(model.config, layout.history_frames, layout.clip_frames, layout.tokens_per_frame)
        # sigma_0 .. sigma_S, plus a repeat of the last so that step S (past the end) stays in range.
        table = schedule(sampler.steps, sampler.shift)
        self.register_buffer("sigmas", torch.cat([table, table[-1:]]), persistent=False)

    def forward(self, z: torch.Tensor, kv_cache: torch.Tensor, step: torch.Tensor):
        sigma = self.sigmas[step]  # [1]
        sigma_next = self.sigmas[step + 1]
        t = sigma.expand(z.shape[0], z.shape[1])  # [B, G]
        prediction = self.model.config.prediction
        cond = self.model(self.plans.denoise, noisy=z, t=t, cache=_InputCache(kv_cache))
        v = velocity(cond, z, sigma, prediction)
        if self.sampler.guided:
            uncond = self.model(self.plans.uncond, noisy=z, t=t)
            v = guide(v, velocity(uncond, z, sigma, prediction), self.sampler.guidance)
        return euler_step(z, v, sigma, sigma_next), step + 1


class EncoderGraph(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(frames).to(torch.float32)


class DecoderGraph(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents).to(torch.float32)
