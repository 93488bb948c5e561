"""Training the light codec (our 8x autoencoder) on video frames, and measuring it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vgpt.codecs import LightCodec, LightCodecConfig
from vgpt.progress import progress_bar
from vgpt.training.data import DataConfig, StreamSampler, VideoClipDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecTrainConfig:
    data: DataConfig  # num_frames frames per sample; each frame is one training image
    out: str = "runs/codec"
    channels: tuple[int, int, int] = (16, 32, 64)
    steps: int = 2000
    batch_size: int = 8  # samples (each of data.num_frames frames)
    lr: float = 1e-3
    seed: int = 0
    workers: int = 0
    save_every: int = 0  # also save the codec every this many steps (0: only at the end)
    init: str | None = None  # continue from this codec folder instead of a fresh initialisation
    stop_after: int | None = None  # run only this many steps of the `steps`-long schedule
    progress: bool = True  # a progress bar (on a terminal)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of frames in [-1, 1] (peak-to-peak 2)."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def train_codec(config: CodecTrainConfig) -> tuple[LightCodec, dict[str, float]]:
    torch.manual_seed(config.seed)
    dataset = VideoClipDataset(config.data)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=StreamSampler(len(dataset), config.seed),
                        num_workers=config.workers)  # fmt: skip
    codec = LightCodec.load(config.init) if config.init else LightCodec(LightCodecConfig(channels=config.channels))
    codec.train()
    opt = torch.optim.Adam(codec.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    batches = iter(loader)
    last = min(config.steps, config.stop_after or config.steps)
    bar = progress_bar(last, "codec", "step", config.progress)
    for step in range(1, last + 1):
        frames = next(batches).flatten(0, 1)  # [B*n, 3, H, W]
        recon = codec.decode(codec.encode_unscaled(frames) * codec.scaling_factor)
        loss = (recon - frames).pow(2).mean() + 0.1 * (recon - frames).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)  # plain conv stacks spike without it
        opt.step()
        sched.step()
        bar.update(1)
        if step % 100 == 0 or step == last:
            log.info("codec step %d loss %.5f psnr %.2f dB", step, loss.item(), psnr(recon.detach(), frames))
        if config.save_every and step % config.save_every == 0 and step < last:
            _calibrate_scale(codec, batches)
            codec.save(config.out, extra={"steps": step, "partial": True}, overwrite=True)
            codec.train()
    bar.close()
    std = _calibrate_scale(codec, batches)
    return codec, {"latent_std_unscaled": std}


@torch.no_grad()
def _calibrate_scale(codec: LightCodec, batches) -> float:
    """Scale latents to unit variance, as the SDXL VAE's scaling factor does for its latents."""
    codec.eval()
    sample = torch.cat([next(batches).flatten(0, 1) for _ in range(8)])
    std = codec.encode_unscaled(sample).std().item()
    codec.with_scaling_factor(1.0 / std)
    return std


@torch.no_grad()
def codec_psnr(codec: LightCodec, frames: torch.Tensor) -> float:
    """Reconstruction PSNR over frames [N, 3, H, W]."""
    recon = torch.cat([codec.decode(codec.encode(frames[i : i + 64])) for i in range(0, len(frames), 64)])
    return psnr(recon, frames)


def save_trained_codec(codec: LightCodec, out: str | Path, report: dict, overwrite: bool = True) -> Path:
    return codec.save(out, extra=report, overwrite=overwrite)
