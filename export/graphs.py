"""The exported networks as torch modules with every layout constant baked in.

- `PrefillGraph`: M clean history latents -> the KV cache of every layer.
- `DenoiseGraph`: one Euler step of the G-frame noisy clip against that cache: both guidance
  branches (one for a distilled student, or with guidance off), x-prediction to velocity, guidance and
  the update. The schedule is a constant table
  indexed by the `step` input, and the graph outputs `step + 1`: the runtime's loop binds the
  outputs of one step as the inputs of the next and never writes to the device, which is what a
  CUDA graph of the whole loop needs.
- `AppendGraph`: the rolling mode's window step: one new frame in, the cache slid by one frame out.
- `EncoderGraph` / `DecoderGraph`: the latent codec, one frame in, G frames out.

The forward calls (masks, positions, LongRoPE set) come from `vgpt.predictors.inference_calls`, so the graphs
compute exactly what the `cached` reference predictor computes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch
from torch import nn

from vgpt.codecs.base import LatentCodec
from vgpt.kv_cache import GraphCache
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.predictors import append_call, inference_calls
from vgpt.rolling import roll_window
from vgpt.sampler import SamplerConfig, euler_step, guide, sigma_table, velocity


@dataclass(frozen=True)
class GraphContext:
    """What a graph module is built from (vgpt.export.registry's entries build theirs with `of(context)`)."""

    model: VideoGPT
    codec: LatentCodec
    layout: Layout
    sampler: SamplerConfig
    two_part: bool = False  # the denoising step's attention: vgpt.kv_cache.two_part_attention


def build_graph(entry, context: GraphContext) -> nn.Module:
    """The module of a registry entry (`module` names its class)."""
    path, name = entry.module.split(":")
    return getattr(importlib.import_module(path), name).of(context)


class PrefillGraph(nn.Module):
    def __init__(self, model: VideoGPT, layout: Layout, sampler: SamplerConfig) -> None:
        super().__init__()
        self.model = model
        self.calls = inference_calls(model.config, layout.history_frames, layout.clip_frames, layout.tokens_per_frame)

    @classmethod
    def of(cls, c: GraphContext) -> PrefillGraph:
        return cls(c.model, c.layout, c.sampler)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        cache = GraphCache.empty(self.model.config, history.shape[0], self.model.dtype)
        self.model(self.calls.prefill, clean=history, cache=cache, write_cache=True)
        return cache.stacked()  # [layers, 2, B, nkv, Lc, hd]


class DenoiseGraph(nn.Module):
    """`two_part`: the conditional branch attends the cache and the clip's own keys/values as two parts
    (vgpt.kv_cache.two_part_attention), so the step never concatenates the cache into a longer copy; the
    graph's inputs and outputs are the same either way."""

    def __init__(self, model: VideoGPT, layout: Layout, sampler: SamplerConfig, two_part: bool = False) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.calls = inference_calls(model.config, layout.history_frames, layout.clip_frames, layout.tokens_per_frame)
        call = self.calls.denoise
        self.two_part = two_part
        # Whether a clip token is masked from any cached key (not in Video-GPT's inference calls).
        self.past_masked = not bool(call.mask[:, : call.past_tokens].all())
        # sigma_0 .. sigma_S (a student's own K-step table), plus a repeat of the last so that step S (past
        # the end) stays in range.
        table = sigma_table(sampler)
        self.register_buffer("sigmas", torch.cat([table, table[-1:]]), persistent=False)

    @classmethod
    def of(cls, c: GraphContext) -> DenoiseGraph:
        return cls(c.model, c.layout, c.sampler, two_part=c.two_part)

    def forward(self, z: torch.Tensor, kv_cache: torch.Tensor, step: torch.Tensor):
        sigma = self.sigmas[step]  # [1]
        sigma_next = self.sigmas[step + 1]
        t = sigma.expand(z.shape[0], z.shape[1])  # [B, G]
        prediction = self.model.config.prediction
        cache = GraphCache(kv_cache, self.two_part, self.past_masked)
        cond = self.model(self.calls.denoise, noisy=z, t=t, cache=cache)
        v = velocity(cond, z, sigma, prediction)
        if self.sampler.guided:
            uncond = self.model(self.calls.uncond, noisy=z, t=t)
            v = guide(v, velocity(uncond, z, sigma, prediction), self.sampler.guidance)
        return euler_step(z, v, sigma, sigma_next), step + 1


class AppendGraph(nn.Module):
    """Rolling mode: drop the oldest frame of the cached window and append a new one (approximate;
    see vgpt.rolling)."""

    def __init__(self, model: VideoGPT, layout: Layout, sampler: SamplerConfig) -> None:
        super().__init__()
        self.model = model
        self.tokens = layout.tokens_per_frame
        self.factor_set = inference_calls(
            model.config, layout.history_frames, layout.clip_frames, layout.tokens_per_frame
        ).factor_set
        M = layout.history_frames
        self.call = append_call(model.config, M - 1, M, layout.tokens_per_frame, self.factor_set)

    @classmethod
    def of(cls, c: GraphContext) -> AppendGraph:
        return cls(c.model, c.layout, c.sampler)

    def forward(self, latents: torch.Tensor, kv_cache: torch.Tensor) -> torch.Tensor:
        return roll_window(self.model, kv_cache, latents, self.tokens, self.factor_set, self.call)


class EncoderGraph(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    @classmethod
    def of(cls, c: GraphContext) -> EncoderGraph:
        return cls(c.codec)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(frames).to(torch.float32)


class DecoderGraph(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    @classmethod
    def of(cls, c: GraphContext) -> DecoderGraph:
        return cls(c.codec)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents).to(torch.float32)
