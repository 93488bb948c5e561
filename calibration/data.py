"""Calibration data: what the transformer graphs see in deployment, recorded with the fp32 model.

For each calibration clip: the M history frames are read (a video folder, or the synthetic
generator), encoded by the codec into the prefill graph's input, and the reference sampler (the
denoising-step graph module in eager fp32, which equals `CachedPredictor`) runs from seeded noise;
the noisy clip is recorded at K noise levels spread over the whole schedule, with their step index.

Only latents are stored (a few KB per clip): the KV cache a step reads is recomputed from the
history during calibration, one clip at a time, so no route needs the caches of all samples at once.

The set lives in a folder (`data.safetensors` + `manifest.json`, written last) keyed by everything
it depends on, so a later export with the same inputs reuses it and any change rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vgpt.atomic import atomic_dir
from vgpt.checkpoint import content_hash
from vgpt.codecs.base import LatentCodec
from vgpt.errors import VgptError
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.frames import fit_frames
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.progress import progress_bar
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import SceneConfig, render_video
from vgpt.untrusted import read_json_object
from vgpt.video import list_videos, probe, read_frames

log = logging.getLogger(__name__)

# Synthetic calibration scenes use seeds that neither training (< 1,000,000), held-out evaluation
# (1,000,000...) nor validation (2,000,000...) use.
CALIBRATION_SEED_START = 3_000_000
FORMAT = "vgpt-calibration"
DATA, MANIFEST = "data.safetensors", "manifest.json"


class CalibrationError(VgptError, ValueError):
    """Calibration inputs that cannot be used (no videos, too short videos, a mismatched cache)."""


@dataclass(frozen=True)
class CalibrationConfig:
    count: int = 32  # clips
    levels: int = 8  # noise levels recorded per clip, spread over the schedule
    seed: int = 0  # sampler noise and clip offsets
    videos: str | None = None  # folder, glob or list file; None: synthetic scenes
    seed_start: int = CALIBRATION_SEED_START  # first synthetic scene seed

    def __post_init__(self) -> None:
        if self.count < 1:
            raise CalibrationError(f"calibration count={self.count}: need at least one clip")
        if self.levels < 1:
            raise CalibrationError(f"calibration levels={self.levels}: need at least one noise level")


def recorded_steps(steps: int, levels: int) -> list[int]:
    """Step indices 0..S-1 spread evenly over the schedule, first and last included."""
    return sorted({round(x) for x in np.linspace(0, steps - 1, min(levels, steps))})


@dataclass(frozen=True)
class CalibrationSet:
    history: torch.Tensor  # [N, M, C, h, w] prefill inputs
    z: torch.Tensor  # [N, K, G, C, h, w] denoising-step inputs
    steps: torch.Tensor  # [K] int64: the step index each level of z enters
    manifest: dict

    def __len__(self) -> int:
        return self.history.shape[0]

    def samples(self) -> Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]]:
        """Per clip: (history [1, M, C, h, w], [(z [1, G, C, h, w], step [1]) per level])."""
        for i in range(len(self)):
            yield (
                self.history[i : i + 1],
                [(self.z[i, k : k + 1], self.steps[k : k + 1]) for k in range(self.steps.numel())],
            )


def _history_frames(config: CalibrationConfig, layout: Layout) -> Iterator[np.ndarray]:
    """uint8 [M, H, W, 3] per calibration clip."""
    M = layout.history_frames
    H, W = layout.pixel_size
    if config.videos is None:
        scene = SceneConfig(height=H, width=W, frames=M)
        for s in range(config.seed_start, config.seed_start + config.count):
            yield render_video(s, scene)
        return
    paths = list_videos(config.videos)
    if not paths:
        raise CalibrationError(f"no videos found in {config.videos!r} for calibration")
    rng = np.random.default_rng(config.seed)
    lengths = {}
    for i in range(config.count):
        path = paths[i % len(paths)]
        if path not in lengths:
            lengths[path] = probe(path).frames
        if lengths[path] < M:
            raise CalibrationError(f"{path} has {lengths[path]} frames; calibration needs at least {M} per video "
                                   "(the layout's history); remove it or choose a shorter history")  # fmt: skip
        start = int(rng.integers(0, lengths[path] - M + 1))
        yield read_frames(path, range(start, start + M))


def _key(config: CalibrationConfig, layout: Layout, sampler: SamplerConfig, model_hash: str, codec_hash: str) -> dict:
    videos = None
    if config.videos is not None:
        videos = [[str(p), p.stat().st_size, int(p.stat().st_mtime)] for p in list_videos(config.videos)]
    return {"format": FORMAT, "config": asdict(config), "videos": videos, "layout": layout.to_dict(),
            "sampler": asdict(sampler), "model_sha256": model_hash, "codec_sha256": codec_hash}  # fmt: skip


def calibration_root() -> Path:
    return Path(os.environ.get("VGPT_CACHE", Path.home() / ".cache" / "vgpt")) / "calibration"


@torch.no_grad()
def _cached_manifest(folder: Path) -> dict | None:
    """The manifest of a cached calibration set, or None when there is none or it is damaged (then the
    set is recorded again and replaces it)."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return read_json_object(folder / MANIFEST, CalibrationError, "recording it again")
    except CalibrationError as err:
        log.warning("calibration: the cached set is damaged (%s)", err)
        return None


def build_calibration(
    model: VideoGPT,
    codec: LatentCodec,
    layout: Layout,
    sampler: SamplerConfig,
    config: CalibrationConfig,
    root: str | Path | None = None,
    progress: bool = True,
) -> CalibrationSet:
    """Record (or load the cached) calibration set of one layout with the fp32 `model`."""
    codec_state = codec.state_dict() if isinstance(codec, torch.nn.Module) else {}
    key = _key(config, layout, sampler, content_hash(model.state_dict()), content_hash(codec_state))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(root) if root is not None else calibration_root()
    folder = folder / digest
    manifest = _cached_manifest(folder)
    if manifest is not None:
        if manifest.get("key") != key:
            raise CalibrationError(f"{folder} holds a calibration set for other inputs; delete it to rebuild")
        data = load_file(folder / DATA)
        log.info("calibration: reusing %s (%d clips)", folder, manifest["clips"])
        return CalibrationSet(data["history"], data["z"], data["steps"], manifest)

    steps = recorded_steps(sampler.steps, config.levels)
    prefill = PrefillGraph(model, layout, sampler).eval()
    denoise = DenoiseGraph(model, layout, sampler).eval()
    gen = torch.Generator().manual_seed(config.seed)
    G, C = layout.clip_frames, model.config.latent_channels
    H, W = layout.pixel_size
    histories, zs = [], []
    bar = progress_bar(config.count, "calibration set", "clip", progress)
    for frames in _history_frames(config, layout):
        video = fit_frames(frames, H, W)[None]  # [1, M, 3, H, W]
        history = codec.encode_video(video).to(torch.float32)
        kv = prefill(history)
        z = torch.randn((1, G, C, layout.latent_height, layout.latent_width), generator=gen)
        step = torch.zeros(1, dtype=torch.int64)
        levels = []
        for s in range(steps[-1] + 1):
            if s in steps:
                levels.append(z[0].clone())
            z, step = denoise(z, kv, step)
        histories.append(history[0])
        zs.append(torch.stack(levels))
        bar.update(1)
    bar.close()
    history_t, z_t = torch.stack(histories).contiguous(), torch.stack(zs).contiguous()
    steps_t = torch.tensor(steps, dtype=torch.int64)
    last = config.seed_start + config.count - 1
    manifest = {"key": key, "clips": len(histories), "steps": steps,
                "source": config.videos or f"synthetic seeds {config.seed_start}..{last}",
                "history_shape": list(history_t.shape), "z_shape": list(z_t.shape)}  # fmt: skip
    with atomic_dir(folder, overwrite=True) as tmp:
        save_file({"history": history_t, "z": z_t, "steps": steps_t}, tmp / DATA)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))  # written last
    log.info("calibration: recorded %d clips x %d noise levels into %s", len(histories), len(steps), folder)
    return CalibrationSet(history_t, z_t, steps_t, manifest)
