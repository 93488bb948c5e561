"""vgpt-eval: next-clip prediction quality against the copy-last-frame baseline.

For each clip, the model sees M frames and predicts the next G; we report the mean pixel MSE (frames
in [0, 1]) of the prediction and of repeating the last observed frame, and their ratio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from vgpt.checkpoint import load_checkpoint
from vgpt.codecs import LatentCodec, load_codec
from vgpt.config import Layout
from vgpt.frames import fit_frames
from vgpt.predictors import CachedPredictor
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video
from vgpt.video import list_videos, read_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str
    codec: str
    history: int = 4  # M observed frames
    clip: int = 4  # G predicted frames
    height: int = 64
    width: int = 64
    steps: int = 50
    guidance: float = 1.5
    shift: float = 1.0
    videos: str | None = None  # a folder/glob/list; None: synthetic scenes
    seed_start: int = EVAL_SEED_START  # synthetic scenes: seeds training never uses
    count: int = 64
    batch: int = 16
    seed: int = 0  # sampler noise


def _clips(config: EvalConfig) -> list[np.ndarray]:
    need = config.history + config.clip
    if config.videos is None:
        scene = SceneConfig(height=config.height, width=config.width, frames=need)
        return [render_video(s, scene) for s in range(config.seed_start, config.seed_start + config.count)]
    paths = list_videos(config.videos)[: config.count]
    return [read_frames(p, range(need)) for p in paths]


@torch.no_grad()
def evaluate(config: EvalConfig) -> dict:
    model = load_checkpoint(config.checkpoint).model
    codec: LatentCodec = load_codec(config.codec)
    Layout.from_pixels(model.config, config.history, config.clip, config.height, config.width)  # validate
    sampler = SamplerConfig(steps=config.steps, guidance=config.guidance, shift=config.shift)
    predictor = CachedPredictor(model, sampler, window=config.history)
    gen = torch.Generator().manual_seed(config.seed)
    model_se, base_se, n = 0.0, 0.0, 0
    clips = _clips(config)
    M = config.history
    for i in range(0, len(clips), config.batch):
        frames = torch.stack([fit_frames(c, config.height, config.width) for c in clips[i : i + config.batch]])
        history = codec.encode_video(frames[:, :M])  # [B, M, C, h, w]
        latents = predictor.predict(history, 1, config.clip, gen)
        pred = codec.decode_video(latents).clamp(-1, 1)  # [B, G, 3, H, W]
        truth = frames[:, M:]
        last = frames[:, M - 1 : M].expand_as(truth)
        # MSE of frames mapped to [0, 1].
        model_se += ((pred - truth) / 2).pow(2).mean(dim=(1, 2, 3, 4)).sum().item()
        base_se += ((last - truth) / 2).pow(2).mean(dim=(1, 2, 3, 4)).sum().item()
        n += len(frames)
    model_mse, baseline_mse = model_se / n, base_se / n
    return {
        "model_mse": model_mse,
        "baseline_mse": baseline_mse,
        "ratio": model_mse / baseline_mse,
        "clips": n,
        "history": config.history,
        "clip": config.clip,
        "steps": config.steps,
        "guidance": config.guidance,
        "source": config.videos or f"synthetic seeds {config.seed_start}..{config.seed_start + config.count - 1}",
    }
