"""vgpt-eval over an export bundle: each scene's clips rolled out through a runtime backend with the
runtime's own clip loop (`vgpt.runtime.predictor.rollout`), scored by `vgpt.evaluation`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vgpt.evaluation import (
    EvalConfig,
    Rollouts,
    config_clips,
    network_evaluations,
    noise_generators,
    progress,
    report,
    rollout_checkpoint,
)
from vgpt.frames import fit_frames
from vgpt.runtime.predictor import rollout


def predict_clips(backend, clips: list[np.ndarray], seed: int, num_clips: int = 1,
                  on_scene: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Each clip's first M frames through a runtime backend (encode), then `num_clips` clips rolled out by
    the runtime's clip loop (each prefills the newest M latents, predicted ones included). The noise of
    scene i's clip k is the i-th draw of a generator seeded by seed + k, so that two backends given the
    same clips and seed predict from the same noise. Returns (predicted latents [N, K*G, C, h, w],
    predicted frames [N, K*G, 3, H, W] clamped to [-1, 1], true frames [N, M + K*G, 3, H, W] in [-1, 1])."""
    layout = backend.layout
    M, G = layout.history_frames, layout.clip_frames
    H, W = layout.pixel_size
    gens = noise_generators(seed, num_clips)
    latents, predicted, truth = [], [], []
    for clip in clips:
        frames = fit_frames(clip[: M + num_clips * G], H, W).numpy()
        window = np.stack([backend.encode(frames[i : i + 1])[0] for i in range(M)])[None]  # [1, M, C, h, w]
        result = rollout(backend, window, gens)
        latents.append(result.latents)
        predicted.append(np.clip(result.frames, -1, 1))
        truth.append(frames)
        if on_scene is not None:
            on_scene()
    return np.stack(latents), np.stack(predicted), np.stack(truth)


def round_trip_clips(backend, truth: np.ndarray) -> np.ndarray:
    """The true future through the backend's codec: true frames [N, M + K*G, 3, H, W] -> frames
    [N, K*G, 3, H, W] encoded and decoded (G at a time, the decoder's shape), clamped to [-1, 1]."""
    layout = backend.layout
    M, G = layout.history_frames, layout.clip_frames
    out = []
    for frames in truth:
        latents = np.stack([backend.encode(frames[i : i + 1])[0] for i in range(M, len(frames))])
        out.append(np.concatenate([backend.decode(latents[k : k + G]) for k in range(0, len(latents), G)]))
    return np.clip(np.stack(out), -1, 1)


def rollout_bundle(config: EvalConfig) -> Rollouts:
    from vgpt.runtime.loading import open_backend

    backend = open_backend(config.bundle, layout=config.bundle_layout)
    try:
        layout = backend.layout
        clips, source = config_clips(config, layout)
        with progress(config, len(clips)) as bar:
            _, predicted, truth = predict_clips(backend, clips, config.seed, config.num_clips, on_scene=bar.update)
        round_trip = round_trip_clips(backend, truth)
    finally:
        backend.close()
    manifest = backend.manifest  # a bundle's (ONNX Runtime) or an engine folder's (TensorRT)
    info = {"clips": len(clips), "history": layout.history_frames, "clip": layout.clip_frames,
            "num_clips": config.num_clips, "steps": backend.steps, "guidance": manifest.sampler.guidance,
            "shift": manifest.sampler.shift, "precision": manifest.precision, "bundle": str(config.bundle),
            "network_evaluations": network_evaluations(manifest.sampler.config), "source": source}  # fmt: skip
    if manifest.sampler.student is not None:  # a student bundle: its table, and what it was distilled from
        info["timesteps"] = list(manifest.sampler.schedule)
        info["distilled"] = manifest.sampler.student.to_dict()
    return Rollouts(predicted, truth, info, round_trip)


def evaluate(config: EvalConfig) -> dict:
    """Roll out (a bundle through the runtime, a checkpoint eagerly), score, and write the plot and
    contact sheet asked for; returns the report."""
    rollouts = rollout_bundle(config) if config.bundle is not None else rollout_checkpoint(config)
    return report(config, rollouts)
