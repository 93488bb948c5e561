"""Training the light codec (our 8x autoencoder) on video frames, and measuring it."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vgpt.codecs import LightCodec, LightCodecConfig
from vgpt.metrics import psnr
from vgpt.progress import progress_bar
from vgpt.training.data import DataConfig, StreamSampler, VideoClipDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecTrainConfig:
    data: DataConfig  # num_frames frames per sample; each frame is one training image
    out: str = "runs/codec"
    channels: tuple[int, int, int] = (16, 32, 64)
    latent_channels: int = 4  # a fresh codec's; `init` keeps its own
    steps: int = 2000
    batch_size: int = 8  # samples (each of data.num_frames frames)
    lr: float = 1e-3
    seed: int = 0
    workers: int = 0
    save_every: int = 0  # also save the codec every this many steps (0: only at the end)
    init: str | None = None  # continue from this codec folder instead of a fresh initialisation
    stop_after: int | None = None  # run only this many steps of the `steps`-long schedule
    progress: bool = True  # a progress bar (on a terminal)
    # Train the decoder alone: the encoder and its scaling factor stay as `init` has them, so the
    # latents (and every transformer trained on them) are unchanged. Needs `init`.
    decoder_only: bool = False
    # Extra loss weight on the pixels that differ from the frame's dominant colour (see
    # `reconstruction_loss`); 0 is the plain loss.
    foreground_weight: float = 0.0
    force: bool = False  # replace a codec already at `out`

    def __post_init__(self) -> None:
        if self.decoder_only and self.init is None:
            raise ValueError("CodecTrainConfig.decoder_only: give the codec whose encoder stays fixed (init)")
        if self.foreground_weight < 0:
            raise ValueError(f"CodecTrainConfig.foreground_weight={self.foreground_weight}: must be >= 0")


def foreground(frames: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 1, H, W] in 0..1: how far each pixel is from its frame's dominant colour (the
    per-channel median), relative to the frame's largest such distance. Small objects on a flat
    background (the synthetic scenes' balls) are a few percent of the pixels and so of a plain loss;
    this finds them without labels."""
    median = frames.flatten(2).median(dim=2).values[..., None, None]  # [B, 3, 1, 1]
    distance = (frames - median).norm(dim=1, keepdim=True)
    return distance / distance.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


def reconstruction_loss(recon: torch.Tensor, frames: torch.Tensor, foreground_weight: float = 0.0) -> torch.Tensor:
    """MSE + 0.1 L1, each pixel weighted 1 + foreground_weight * foreground(frames) (weights normalised
    to mean 1 per frame, so the loss keeps its scale)."""
    error = (recon - frames).pow(2) + 0.1 * (recon - frames).abs()
    if foreground_weight == 0:
        return error.mean()
    weight = 1 + foreground_weight * foreground(frames)
    return (error * (weight / weight.mean(dim=(2, 3), keepdim=True))).mean()


def train_codec(config: CodecTrainConfig) -> tuple[LightCodec, dict[str, float]]:
    out = Path(config.out)
    if out.exists() and not config.force and (not out.is_dir() or any(out.iterdir())):
        # Before any step: a codec that models were trained on must not be replaced by accident.
        raise FileExistsError(errno.EEXIST, "already exists: pass --force to replace it, or another --out", str(out))
    torch.manual_seed(config.seed)
    dataset = VideoClipDataset(config.data)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=StreamSampler(len(dataset), config.seed),
                        num_workers=config.workers)  # fmt: skip
    codec = (
        LightCodec.load(config.init)
        if config.init
        else LightCodec(LightCodecConfig(channels=config.channels, latent_channels=config.latent_channels))
    )
    codec.train()
    if config.decoder_only:
        codec.encoder.requires_grad_(False)
    params = codec.decoder.parameters() if config.decoder_only else codec.parameters()
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    batches = iter(loader)
    last = min(config.steps, config.stop_after or config.steps)
    bar = progress_bar(last, "codec", "step", config.progress)
    for step in range(1, last + 1):
        frames = next(batches).flatten(0, 1)  # [B*n, 3, H, W]
        recon = codec.decode(codec.encode_unscaled(frames) * codec.scaling_factor)
        loss = reconstruction_loss(recon, frames, config.foreground_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)  # plain conv stacks spike without it
        opt.step()
        sched.step()
        bar.update(1)
        if step % 100 == 0 or step == last:
            log.info("codec step %d loss %.5f psnr %.2f dB", step, loss.item(), _psnr(recon.detach(), frames))
        if config.save_every and step % config.save_every == 0 and step < last:
            if not config.decoder_only:
                _calibrate_scale(codec, batches)
            codec.save(config.out, extra={"steps": step, "partial": True}, overwrite=True)
            codec.train()
    bar.close()
    if config.decoder_only:  # the latents must stay exactly what the encoder gave: keep its scale
        codec.eval()
        return codec, {"decoder_only": True}
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
    return _psnr(recon, frames)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """vgpt.metrics.psnr of frames in [-1, 1] (peak to peak 2), clamped to the range a decoder can show."""
    return float(psnr(a.clamp(-1, 1).numpy(), b.clamp(-1, 1).numpy(), peak_to_peak=2, frame_axis=None))


def save_trained_codec(codec: LightCodec, out: str | Path, report: dict, overwrite: bool = True) -> Path:
    return codec.save(out, extra=report, overwrite=overwrite)
