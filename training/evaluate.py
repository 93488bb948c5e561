"""vgpt-eval: next-clip prediction quality against the copy-last-frame baseline.

For each clip, the model sees M frames and predicts the next G; we report the mean pixel MSE (frames
in [0, 1]) of the prediction and of repeating the last observed frame, and their ratio. A checkpoint
is evaluated eagerly (batched `CachedPredictor`); an export bundle (fp32, fp16, FP8 or INT8 graphs)
through the runtime's ONNX Runtime backend, one clip at a time (`predict_clips`).
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
    checkpoint: str | None = None
    codec: str | None = None
    bundle: str | None = None  # an export bundle instead of checkpoint + codec (its layout and sampler)
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


def eval_clips(videos: str | None, count: int, seed_start: int, frames: int, height: int, width: int):
    """The evaluation clips: uint8 [frames, H, W, 3] each, the first `frames` of each video (or of each
    held-out synthetic scene)."""
    if videos is None:
        scene = SceneConfig(height=height, width=width, frames=frames)
        return [render_video(s, scene) for s in range(seed_start, seed_start + count)]
    paths = list_videos(videos)[:count]
    return [read_frames(p, range(frames)) for p in paths]


def layout_clips(layout: Layout, count: int, videos: str | None = None, seed_start: int = EVAL_SEED_START):
    """The evaluation clips of a layout (M + G frames at its pixel size) and a description of them."""
    H, W = layout.pixel_size
    clips = eval_clips(videos, count, seed_start, layout.history_frames + layout.clip_frames, H, W)
    return clips, videos or f"synthetic seeds {seed_start}..{seed_start + len(clips) - 1}"


def predict_clips(backend, clips: list[np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each clip's first M frames through a runtime backend (encode, prefill, S denoising steps, decode),
    with the noise of clip i the i-th draw of one generator seeded by `seed`, so that two backends
    given the same clips and seed predict from the same noise. Returns (predicted latents
    [N, G, C, h, w], predicted frames [N, G, 3, H, W] clamped to [-1, 1], true frames
    [N, M + G, 3, H, W] in [-1, 1])."""
    layout = backend.layout
    M, G = layout.history_frames, layout.clip_frames
    H, W = layout.pixel_size
    gen = torch.Generator().manual_seed(seed)
    latents, predicted, truth = [], [], []
    for clip in clips:
        frames = fit_frames(clip[: M + G], H, W).numpy()
        history = np.stack([backend.encode(frames[i : i + 1])[0] for i in range(M)])[None]
        backend.prefill(history)
        C = history.shape[2]
        z = torch.randn((1, G, C, layout.latent_height, layout.latent_width), generator=gen).numpy()
        clip_latents = backend.denoise(z)[0]
        latents.append(clip_latents)
        predicted.append(np.clip(backend.decode(clip_latents), -1, 1))
        truth.append(frames)
    return np.stack(latents), np.stack(predicted), np.stack(truth)


def task_scores(predicted: np.ndarray, truth: np.ndarray, history: int) -> dict:
    """Model and copy-last-frame MSE (frames mapped to [0, 1]) of predictions [N, G, 3, H, W] against
    the true clips [N, M + G, 3, H, W]."""
    future = truth[:, history:]
    last = np.broadcast_to(truth[:, history - 1 : history], future.shape)
    model_mse = float((((predicted - future) / 2) ** 2).mean())
    baseline_mse = float((((last - future) / 2) ** 2).mean())
    return {"model_mse": model_mse, "baseline_mse": baseline_mse, "ratio": model_mse / baseline_mse}


def evaluate_bundle(config: EvalConfig) -> dict:
    from vgpt.runtime.loading import open_backend

    backend = open_backend(config.bundle)
    try:
        layout = backend.layout
        clips, source = layout_clips(layout, config.count, config.videos, config.seed_start)
        _, predicted, truth = predict_clips(backend, clips, config.seed)
    finally:
        backend.close()
    manifest = getattr(backend, "manifest", {})
    sampler = manifest.get("sampler", {})
    return {
        **task_scores(predicted, truth, layout.history_frames),
        "clips": len(clips),
        "history": layout.history_frames,
        "clip": layout.clip_frames,
        "steps": backend.steps,
        "guidance": sampler.get("guidance"),
        "precision": manifest.get("precision"),
        "bundle": str(config.bundle),
        "source": source,
    }


@torch.no_grad()
def evaluate(config: EvalConfig) -> dict:
    if config.bundle is not None:
        return evaluate_bundle(config)
    if config.checkpoint is None or config.codec is None:
        raise ValueError("EvalConfig: give a bundle, or a checkpoint and a codec")
    model = load_checkpoint(config.checkpoint).model
    codec: LatentCodec = load_codec(config.codec)
    layout = Layout.from_pixels(model.config, config.history, config.clip, config.height, config.width)
    sampler = SamplerConfig(steps=config.steps, guidance=config.guidance, shift=config.shift)
    predictor = CachedPredictor(model, sampler, window=config.history)
    gen = torch.Generator().manual_seed(config.seed)
    clips, source = layout_clips(layout, config.count, config.videos, config.seed_start)
    M = config.history
    predicted, truths = [], []
    for i in range(0, len(clips), config.batch):
        frames = torch.stack([fit_frames(c, config.height, config.width) for c in clips[i : i + config.batch]])
        history = codec.encode_video(frames[:, :M])  # [B, M, C, h, w]
        latents = predictor.predict(history, 1, config.clip, gen)
        predicted.append(codec.decode_video(latents).clamp(-1, 1).numpy())  # [B, G, 3, H, W]
        truths.append(frames.numpy())
    return {
        **task_scores(np.concatenate(predicted), np.concatenate(truths), M),
        "clips": len(clips),
        "history": config.history,
        "clip": config.clip,
        "steps": config.steps,
        "guidance": config.guidance,
        "source": source,
    }
