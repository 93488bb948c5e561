"""Reference predictors for autoregressive next-clip prediction over latents.

- `FullPredictor`: the released behaviour. Every denoising step recomputes the whole conditional
  sequence (history + noisy clip) and, with guidance, the unconditional one (noisy clip alone).
- `CachedPredictor`: the history runs once into a preallocated per-layer KV cache; each step runs
  only the noisy clip against it (the unconditional branch attends nothing). Exact, because clean
  keys never depend on noisy tokens (reference section 5).
- `RollingPredictor` (GPDiT's lightweight mask only): each clean frame runs through the network alone,
  once, into a ring buffer of the newest `window` frames (vgpt.frame_ring); each step reads it. Exact,
  because under that mask a clean frame's keys and values depend on that frame alone.

Both draw the same initial noise from the same generator, so with one seed they agree to fp32
round-off. After each clip the prediction joins the history, which is cut to the newest `window`
frames (reference section 7).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch

from vgpt.clips import roll_clips
from vgpt.config import ModelConfig
from vgpt.forward import ForwardCall, forward_call
from vgpt.frame_ring import FrameRing
from vgpt.kv_cache import KVCache
from vgpt.model import VideoGPT
from vgpt.rope import FactorSet, select_factor_set
from vgpt.sampler import SamplerConfig, sample
from vgpt.tokens import build_sequence, conditional_frames, history_frames, unconditional_frames


@dataclass(frozen=True)
class InferenceCalls:
    """The constant calls of one (history, clip, tokens-per-frame) inference layout."""

    full: ForwardCall  # history + noisy clip, recomputed whole
    prefill: ForwardCall  # the history alone, into the cache
    denoise: ForwardCall  # the noisy clip against the cached history
    uncond: ForwardCall  # the noisy clip alone, positions from 0
    uncond_padded: ForwardCall  # the same, padded to the conditional length (the released batching)

    @property
    def factor_set(self) -> FactorSet:
        return self.full.factor_set


@lru_cache(maxsize=64)
def inference_calls(config: ModelConfig, history: int, clip: int, tokens_per_frame: int) -> InferenceCalls:
    cond = build_sequence(conditional_frames(history, clip), tokens_per_frame)
    # One factor set for the whole step, chosen by the conditional sequence's largest position,
    # as a batched call of both branches would choose it.
    factor_set = select_factor_set(config, int(cond.positions.max()))
    uncond = build_sequence(unconditional_frames(clip), tokens_per_frame)
    return InferenceCalls(
        full=forward_call(config, cond, factor_set=factor_set),
        prefill=forward_call(config, cond, 0, history, factor_set=factor_set),
        denoise=forward_call(config, cond, history, history + clip, factor_set=factor_set),
        uncond=forward_call(config, uncond, factor_set=factor_set),
        uncond_padded=padded_unconditional_call(forward_call(config, cond, factor_set=factor_set), history),
    )


def padded_unconditional_call(full: ForwardCall, history: int) -> ForwardCall:
    """The unconditional branch at the conditional branch's length, as the released pipeline batches
    it: the history tokens stay in the sequence as padding that the noisy clip cannot see, and the
    clip's positions start from 0. Its noisy outputs equal the unpadded branch's; its cost is that of
    a full conditional call."""
    block = full.block
    mask = full.mask.clone()
    mask[history * block :, : history * block] = False  # [Lq, Lk]: noisy queries never see the padding
    positions = full.positions.clone()
    positions[history * block :] -= history * block
    return ForwardCall(full.frames, full.tokens_per_frame, positions, mask, full.factor_set, full.past_tokens)


def append_call(config: ModelConfig, cached: int, total: int, tokens_per_frame: int, factor_set: FactorSet):
    """Clean frames [cached, total) on top of `cached` frames already in the cache."""
    seq = build_sequence(history_frames(total), tokens_per_frame)
    return forward_call(config, seq, cached, total, factor_set=factor_set)


class Predictor(ABC):
    def __init__(self, model: VideoGPT, sampler: SamplerConfig | None = None, window: int | None = None):
        self.model = model
        self.sampler = sampler or SamplerConfig()
        if window is not None and window < 1:
            raise ValueError(f"window={window}: must be a positive number of frames")
        self.window = window

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @torch.no_grad()
    def predict(
        self,
        history: torch.Tensor,
        num_clips: int,
        clip_frames: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """history [B, M, C, h, w] -> the next num_clips * clip_frames latents [B, F, C, h, w]."""
        if history.ndim != 5 or history.shape[1] < 1:
            raise ValueError(f"history must be [B, M>=1, C, h, w], got {tuple(history.shape)}")
        frames = history.to(torch.float32)
        B, _, C, h, w = frames.shape
        self.prepare(frames, num_clips, clip_frames)

        def one_clip(frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
            first = 0 if self.window is None else max(0, frames.shape[1] - self.window)
            z = torch.randn((B, clip_frames, C, h, w), generator=generator, device=frames.device)
            return self.denoise_clip(frames, first, z)

        # The window grows: `self.window` picks the frames each clip is conditioned on.
        return torch.cat(roll_clips(frames, [generator] * num_clips, one_clip), dim=1)

    def longest_history(self, history: torch.Tensor, num_clips: int, clip_frames: int) -> int:
        """The most history frames one clip of this prediction is conditioned on."""
        M = history.shape[1]
        longest = M + (num_clips - 1) * clip_frames
        return longest if self.window is None else min(longest, max(self.window, M))

    def prepare(self, history: torch.Tensor, num_clips: int, clip_frames: int) -> None:  # noqa: B027
        """Hook run before the first clip of predict(): allocate, forget earlier state."""

    def branches(self, frames: torch.Tensor, first: int, clip_frames: int):
        """(conditional, unconditional or None): the calls (noisy clip, t) -> model output that denoise a
        clip of `clip_frames` conditioned on frames[:, first:]; the unconditional one only with guidance."""
        tokens = self._tokens(frames)
        calls = inference_calls(self.config, frames.shape[1] - first, clip_frames, tokens)
        conditional = self.conditional(frames, first, calls, tokens)
        unconditional = self.unconditional(frames, first, calls) if self.sampler.guided else None
        return conditional, unconditional

    def denoise_clip(self, frames: torch.Tensor, first: int, z: torch.Tensor) -> torch.Tensor:
        """Denoise z [B, G, ...] conditioned on the history frames[:, first:]."""
        conditional, unconditional = self.branches(frames, first, z.shape[1])

        def denoise(zt, sigma):
            t = sigma.expand(zt.shape[0], zt.shape[1])  # [B, G]
            cond = conditional(zt, t)
            return cond, (unconditional(zt, t) if unconditional is not None else None)

        return sample(denoise, z, self.sampler, self.config.prediction)

    def unconditional(self, frames: torch.Tensor, first: int, calls: InferenceCalls):
        """The unconditional branch: the noisy clip alone, positions from 0."""
        return lambda zt, t: self.model(calls.uncond, noisy=zt, t=t)

    @abstractmethod
    def conditional(
        self, frames: torch.Tensor, first: int, calls: InferenceCalls, tokens: int
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The conditional branch for one clip: (noisy clip, t) -> model output."""

    def _tokens(self, x: torch.Tensor) -> int:
        p = self.config.patch_size
        return (x.shape[-2] // p) * (x.shape[-1] // p)


class FullPredictor(Predictor):
    """Recomputes history + noisy clip (and the unconditional branch) at every step.

    `pad_uncond` (default, the released pipeline's cost) runs the unconditional branch at the
    conditional length; the values are the same either way.
    """

    def __init__(self, model, sampler=None, window=None, pad_uncond: bool = True):
        super().__init__(model, sampler, window)
        self.pad_uncond = pad_uncond

    def conditional(self, frames, first, calls, tokens):
        context = frames[:, first:]
        return lambda zt, t: self.model(calls.full, clean=context, noisy=zt, t=t)

    def unconditional(self, frames, first, calls):
        if not self.pad_uncond:
            return super().unconditional(frames, first, calls)
        context = frames[:, first:]
        return lambda zt, t: self.model(calls.uncond_padded, clean=context, noisy=zt, t=t)


class CachedPredictor(Predictor):
    """Runs the history once into a static KV cache; each step runs only the noisy clip."""

    def __init__(self, model, sampler=None, window=None):
        super().__init__(model, sampler, window)
        self.cache: KVCache | None = None
        self._cached_first = -1  # index (into the frames of predict()) of the first cached frame
        self._cached_count = 0  # frames in the cache

    def prepare(self, history: torch.Tensor, num_clips: int, clip_frames: int) -> None:
        """Allocate the cache once for the longest history this prediction will hold."""
        B = history.shape[0]
        capacity = self.longest_history(history, num_clips, clip_frames) * (self._tokens(history) + 2)
        c = self.cache
        if c is None or c.k.shape[1] != B or c.capacity < capacity or c.k.device != history.device:
            self.cache = KVCache(self.config, B, capacity, self.model.dtype, history.device)
        self.cache.reset()
        self._cached_first, self._cached_count = -1, 0

    def fill(self, frames: torch.Tensor, first: int, calls: InferenceCalls, tokens: int) -> KVCache:
        """Bring the cache to hold frames[:, first:] exactly, appending when that is exact."""
        count = frames.shape[1] - first
        cache = self.cache
        reusable = (
            self._cached_first == first
            and cache.factor_set == calls.factor_set
            and cache.length == self._cached_count * (tokens + 2)
            and self._cached_count <= count
        )
        if not reusable:
            cache.reset()
            self._cached_first, self._cached_count = first, 0
        if self._cached_count == 0:
            self.model(calls.prefill, clean=frames[:, first:], cache=cache, write_cache=True)
        elif self._cached_count < count:
            call = append_call(self.config, self._cached_count, count, tokens, calls.factor_set)
            self.model(call, clean=frames[:, first + self._cached_count :], cache=cache, write_cache=True)
        self._cached_count = count
        return cache

    def conditional(self, frames, first, calls, tokens):
        cache = self.fill(frames, first, calls, tokens)
        return lambda zt, t: self.model(calls.denoise, noisy=zt, t=t, cache=cache)


class RollingPredictor(Predictor):
    """GPDiT's lightweight mask: each clean frame (history, then every predicted frame once committed)
    runs through the network alone into a ring of the newest `window` frames; each step reads the ring.
    The window slides by computing only the new frames, with no re-prefill, and stays exact."""

    def __init__(self, model, sampler=None, window=None):
        super().__init__(model, sampler, window)
        self.ring: FrameRing | None = None
        self._capacity = 0
        self._observed = 0  # frames of predict()'s sequence pushed into the ring

    def prepare(self, history: torch.Tensor, num_clips: int, clip_frames: int) -> None:
        self._capacity = self.window or self.longest_history(history, num_clips, clip_frames)
        self.ring, self._observed = None, 0

    def conditional(self, frames, first, calls, tokens):
        ring = self.ring
        if ring is None or ring.factor_set != calls.factor_set:  # the "length" policy can switch sets
            ring = self.ring = FrameRing(self.config, frames.shape[0], self._capacity, tokens, calls.factor_set,
                                         self.model.dtype, frames.device)  # fmt: skip
            self._observed = first
        ring.push(self.model, frames[:, max(self._observed, first) :])
        self._observed = frames.shape[1]
        assert ring.held == frames.shape[1] - first and bool(calls.denoise.mask[:, : calls.denoise.past_tokens].all())
        cache = ring.read()
        return lambda zt, t: self.model(calls.denoise, noisy=zt, t=t, cache=cache)
