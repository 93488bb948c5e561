"""The next-clip-diffusion training objective (reference section 6).

A sample of n frames is split into K clips; each clip gets one noise level t ~ U[0, 1]; the sequence
is [noisy clip 1, clean clip 1, ..., noisy clip K] under the hierarchical mask; clean context frames
are lightly noised (s ~ U[beta, 1]); the model predicts the clean latents and the loss is the mean
squared error on the noisy frames (mean per frame, then over frames).

`timestep_shift` (1: the reference's t ~ U[0, 1]) draws t as the sampler's shifted schedule spaces its steps
(vgpt.sampler.shift_time of a uniform draw), so training spends its samples where sampling spends its steps.
`foreground_weight` (0: the reference's plain mean) weights each latent position's squared error by
foreground_weights(): small objects on a plain background cover a few positions of a frame, so the plain mean
spends most of its gradient on background the model already draws.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Literal

import torch

from vgpt.config import ModelConfig
from vgpt.forward import ForwardCall, forward_call
from vgpt.model import VideoGPT
from vgpt.sampler import shift_time
from vgpt.tokens import build_sequence, training_frames

# "random" (the paper's), "per_frame" (stage 1), or fixed clip sizes such as (4, 4): the layout a model
# will run at, whose first clip is the unconditional branch and whose later clips the conditional one.
PartitionMode = Literal["random", "per_frame"] | tuple[int, ...]


def splits_into_clips(sizes: tuple[int, ...], n: int) -> bool:
    """Whether fixed clip sizes split a sample of n frames: at least 2 clips, none empty, n frames in all."""
    return len(sizes) >= 2 and min(sizes) >= 1 and sum(sizes) == n


def sample_partition(n: int, generator: torch.Generator, mode: PartitionMode = "random") -> tuple[int, ...]:
    """Clip sizes: K uniform in {2..n} and K-1 distinct cut points uniform in {1..n-1} (the paper's
    GenerateRandomList); "per_frame" gives one frame per clip (stage 1); a tuple gives itself."""
    if n < 2:
        raise ValueError(f"a training sample needs at least 2 frames to split into clips, got {n}")
    if isinstance(mode, tuple):
        if not splits_into_clips(mode, n):
            raise ValueError(f"fixed clip sizes {mode}: need at least 2 positive sizes that add up to the "
                             f"sample's {n} frames")  # fmt: skip
        return mode
    if mode == "per_frame":
        return (1,) * n
    k = int(torch.randint(2, n + 1, (1,), generator=generator))
    cuts = sorted((torch.randperm(n - 1, generator=generator)[: k - 1] + 1).tolist())
    bounds = [0, *cuts, n]
    return tuple(b - a for a, b in itertools.pairwise(bounds))


@lru_cache(maxsize=256)
def training_call(config: ModelConfig, sizes: tuple[int, ...], tokens_per_frame: int) -> ForwardCall:
    return forward_call(config, build_sequence(training_frames(sizes), tokens_per_frame))


def foreground_weights(latents: torch.Tensor, weight: float) -> torch.Tensor:
    """[B, n, C, h, w] clean latents -> [B, n, h, w] weights with mean 1 over each frame's positions.

    A position's weight is 1 + weight * d^2 / mean(d^2), d its distance (over channels) from the frame's
    median latent, the background's; then scaled by 1 / (1 + weight), so the loss keeps its scale and a
    frame without any object (d equal everywhere) keeps the plain mean.
    """
    x = latents.to(torch.float32)
    background = x.flatten(3).median(dim=3).values[..., None, None]  # [B, n, C, 1, 1]
    d2 = (x - background).pow(2).sum(dim=2)  # [B, n, h, w]
    mean = d2.mean(dim=(2, 3), keepdim=True)
    share = torch.where(mean > 1e-12, d2 / mean.clamp_min(1e-12), torch.ones_like(d2))
    return (1 + weight * share) / (1 + weight)


def next_clip_loss(
    model: VideoGPT,
    latents: torch.Tensor,
    generator: torch.Generator,
    mode: PartitionMode = "random",
    beta: float = 0.9,
    foreground_weight: float = 0.0,
    timestep_shift: float = 1.0,
) -> tuple[torch.Tensor, int]:
    """Loss of one batch of clean latents [B, n, C, h, w]; returns (loss, tokens in the sequence).

    All random draws come from `generator` (on the CPU), so a step is reproducible from its seed.
    """
    B, n, C, h, w = latents.shape
    config = getattr(model, "module", model).config  # DDP wraps the model; FSDP2 shards it in place
    p = config.patch_size
    sizes = sample_partition(n, generator, mode)
    call = training_call(config, sizes, (h // p) * (w // p))
    x = latents.to(torch.float32)
    dev = x.device
    # One noise level per clip, repeated over the clip's frames.
    t_clip = torch.rand(B, len(sizes), generator=generator)
    if timestep_shift != 1.0:
        t_clip = shift_time(t_clip, timestep_shift)
    t = t_clip.repeat_interleave(torch.tensor(sizes), dim=1).to(dev)  # [B, n]
    eps = torch.randn(x.shape, generator=generator).to(dev)
    tt = t[:, :, None, None, None]
    noisy = tt * x + (1 - tt) * eps  # t = 1 clean, t = 0 pure noise
    # Clean context: clips 1..K-1, each frame noised with its own s ~ U[beta, 1].
    context = n - sizes[-1]
    s = (beta + (1 - beta) * torch.rand(B, context, generator=generator)).to(dev)[:, :, None, None, None]
    eps_ctx = torch.randn((B, context, C, h, w), generator=generator).to(dev)
    clean = s * x[:, :context] + (1 - s) * eps_ctx
    pred = model(call, clean=clean, noisy=noisy, t=t)  # [B, n, C, h, w], x-prediction
    err = (pred.to(torch.float32) - x).pow(2)  # [B, n, C, h, w]
    if foreground_weight:
        err = err * foreground_weights(x, foreground_weight)[:, :, None]
    per_frame = err.mean(dim=(2, 3, 4))  # [B, n]
    return per_frame.mean(), B * len(call.frames) * call.block
