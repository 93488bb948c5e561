"""The training loop: `train(config)`; `vgpt-train` is a thin CLI over it."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vgpt.checkpoint import content_hash, load_checkpoint
from vgpt.codecs import CODEC_LATENTS, LatentCodec, codec_id, load_codec
from vgpt.config import ConfigError
from vgpt.model import VideoGPT
from vgpt.progress import progress_bar
from vgpt.training import distributed
from vgpt.training.checkpointing import (
    TrainerState,
    find_resume,
    load_training_checkpoint,
    remove_stale_checkpoints,
    save_training_checkpoint,
)
from vgpt.training.config import TrainConfig
from vgpt.training.data import LatentCache, StreamSampler, VideoClipDataset
from vgpt.training.ema import WeightAverage
from vgpt.training.objective import next_clip_loss

log = logging.getLogger(__name__)


def step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def build_model(config: TrainConfig) -> VideoGPT:
    if config.init:
        model = load_checkpoint(config.init).model
        if model.config.rope_factor_policy != config.rope_factor_policy:
            model.config = model.config.replace(rope_factor_policy=config.rope_factor_policy)
        return model.train()
    torch.manual_seed(config.seed)
    return VideoGPT(config.model_config()).train()


def optimizer_for(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (norm scales, biases and tables are not decayed)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.ndim >= 2 and p.shape[0] != 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)


def lr_factor(step: int, config: TrainConfig) -> float:
    """The learning rate at `step` over the peak: linear warm-up, then constant or cosine decay to
    `min_lr_ratio` at the last step."""
    warmup = max(1, config.warmup_steps)
    if step + 1 < warmup or config.lr_schedule == "constant":
        return min(1.0, (step + 1) / warmup)
    progress = min(1.0, (step + 1 - warmup) / max(1, config.steps - warmup))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_scheduler(optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))


def train(config: TrainConfig) -> Path:
    """Train; returns the folder of the last checkpoint."""
    return distributed.launched(_train, config)


def _train(config: TrainConfig, info: distributed.DistInfo) -> Path:
    out = Path(config.out_dir)
    codec: LatentCodec | None = load_codec(config.codec) if config.codec else None
    if codec is None and config.latent_cache is None:
        raise ConfigError("TrainConfig: give a codec (frames -> latents) or a filled latent_cache")
    if isinstance(codec, torch.nn.Module):
        codec = codec.to(info.device).eval()
    dataset = clip_dataset(config, codec)
    # The checkpoints record which latents the model learns, so that another codec is refused later.
    recorded = {CODEC_LATENTS: codec.latent_id()} if codec is not None else {}

    bare = build_model(config).to(info.device)
    optimizer_model = distributed.wrap(bare, config.strategy, info)
    optimizer = optimizer_for(optimizer_model, config)
    scheduler = lr_scheduler(optimizer, config)
    average = WeightAverage(bare, config.ema_decay) if config.ema_decay > 0 else None
    state = TrainerState(step=0, data_position=0)
    if info.rank == 0:  # what a run killed mid-checkpoint left (.step-*.tmp) goes before anything is written
        remove_stale_checkpoints(out)
    resume = find_resume(config.resume, out)
    if resume is not None:
        state = load_training_checkpoint(resume, optimizer_model, optimizer, scheduler, info.device, average)
        log.info("resumed from %s at step %d", resume, state.step)

    batches = iter(clip_loader(dataset, config, info, state.data_position))
    autocast = _autocast(config, info)
    writer = tensorboard_writer(config, out) if info.main else None
    bar = step_progress(config, info, state.step)
    last = None
    tokens_seen, tick = 0, time.perf_counter()
    while state.step < config.steps:
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(config.grad_accum):
            batch = next(batches).to(info.device)
            state.data_position += len(batch)
            latents = batch if dataset.cache is not None else encode_frames(codec, batch)
            # Every draw of this micro-step comes from (seed, step, rank, micro): exact on resume.
            gen = torch.Generator().manual_seed(step_seed(config.seed, state.step, info.rank, micro))
            sync = micro == config.grad_accum - 1 or not info.enabled or config.strategy != "ddp"
            with contextlib.nullcontext() if sync else optimizer_model.no_sync(), autocast:
                loss, tokens = next_clip_loss(
                    optimizer_model, latents, gen, config.partition, config.context_noise_beta,
                    config.foreground_weight, config.timestep_shift,
                )  # fmt: skip
                (loss / config.grad_accum).backward()
            total += loss.item() / config.grad_accum
            tokens_seen += tokens
        torch.nn.utils.clip_grad_norm_(optimizer_model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update()
        state.step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{total:.4f}")
        if state.step % config.log_every == 0 or state.step == config.steps:
            elapsed = time.perf_counter() - tick
            rate = tokens_seen * info.world / max(elapsed, 1e-9)
            lr = scheduler.get_last_lr()[0]
            if info.main:
                log.info("step %d loss %.5f lr %.2e tokens/s %.0f", state.step, total, lr, rate)
                if writer is not None:
                    writer.add_scalar("train/loss", total, state.step)
                    writer.add_scalar("train/lr", lr, state.step)
                    writer.add_scalar("train/tokens_per_s", rate, state.step)
            tokens_seen, tick = 0, time.perf_counter()
        if state.step % config.checkpoint_every == 0 or state.step == config.steps:
            last = save_training_checkpoint(
                out, optimizer_model, bare, optimizer, scheduler, state, config.to_dict(), info.main,
                config.keep_checkpoints, average, recorded,
            )  # fmt: skip
            distributed.barrier(info)
    bar.close()
    if writer is not None:
        writer.close()
    if info.enabled and config.strategy == "ddp":
        # DDP keeps replicas identical; each rank records a digest of its parameters to show it.
        (out / f"rank-{info.rank}.digest").write_text(content_hash(bare.state_dict()) + "\n")
    if last is None:  # resumed at or past the last step: point at what is there
        last = find_resume("auto", out)
    return last


def clip_dataset(config, codec: LatentCodec | None) -> VideoClipDataset:
    """The training samples of a config with `data`, `codec` and `latent_cache` (TrainConfig, DistillConfig):
    latents from the cache when it has one (encoding there on first use), else frames."""
    cache = None
    if config.latent_cache:
        cache = LatentCache(
            config.latent_cache_dir, codec, codec_id(config.codec) if config.codec else None, config.data
        )
    return VideoClipDataset(config.data, cache)


def clip_loader(dataset: VideoClipDataset, config, info: distributed.DistInfo, position: int) -> DataLoader:
    """Batches of `config.batch_size` samples, this rank's stream from sample `position` on (exact resume)."""
    sampler = StreamSampler(len(dataset), config.data.seed, info.rank, info.world, start=position)
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                      persistent_workers=config.workers > 0)  # fmt: skip


@torch.no_grad()
def encode_frames(codec: LatentCodec, frames: torch.Tensor) -> torch.Tensor:
    """[B, n, 3, H, W] frames -> [B, n, C, h, w] latents."""
    return codec.encode_video(frames, batch=64)


def _autocast(config: TrainConfig, info: distributed.DistInfo):
    bf16 = config.precision == "bf16" or (config.precision == "auto" and info.device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=info.device.type, dtype=torch.bfloat16)


def tensorboard_writer(config: TrainConfig, out: Path):
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("tensorboard logging needs the tensorboard package: pip install tensorboard") from err
    return SummaryWriter(str(out / "tensorboard"))


def step_progress(config: TrainConfig, info: distributed.DistInfo, start: int):
    return progress_bar(config.steps, "train", "step", config.progress and info.main, initial=start)
