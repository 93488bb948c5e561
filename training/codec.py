"""Training the light codec (our 8x autoencoder) on video frames, and measuring it.

A run into `out` keeps its training state beside it, in `out.checkpoints/step-N/` (`codec/`, a codec
folder, and `trainer.pt`: optimizer, schedule, RNG states, step, samples drawn, the settings that fix the
run) with `latest` naming the newest, written atomically every `checkpoint_every` steps. `resume="auto"`
continues from there exactly: the run ends with the weights the uninterrupted run would have. The
checkpoints are removed once the codec is saved at `out`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vgpt.atomic import atomic_dir, atomic_file, remove_stale
from vgpt.checkpoint import CheckpointError
from vgpt.codecs import LightCodec, LightCodecConfig
from vgpt.frames import fit_frames
from vgpt.metrics import psnr, score_objects, summarise_objects
from vgpt.progress import progress_bar
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video, scene_objects
from vgpt.training.checkpointing import rng_states, set_rng_states
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
    checkpoint_every: int = 500  # training state into `out.checkpoints/` every this many steps (0: never)
    keep_checkpoints: int = 2
    resume: str | None = None  # "auto": continue from the latest checkpoint in `out.checkpoints/`, if any

    def __post_init__(self) -> None:
        if self.decoder_only and self.init is None:
            raise ValueError("CodecTrainConfig.decoder_only: give the codec whose encoder stays fixed (init)")
        if self.foreground_weight < 0:
            raise ValueError(f"CodecTrainConfig.foreground_weight={self.foreground_weight}: must be >= 0")
        if self.resume not in (None, "auto"):
            raise ValueError(f"CodecTrainConfig.resume={self.resume!r}: None or 'auto'")

    def run_settings(self) -> dict[str, Any]:
        """What fixes the run's sequence of weights: a resumed run must have these as the interrupted one
        had them (stop_after, save_every and checkpointing may change)."""
        fixed = ("channels", "latent_channels", "steps", "batch_size", "lr", "seed", "workers", "init",
                 "decoder_only", "foreground_weight")  # fmt: skip
        settings = {k: getattr(self, k) for k in fixed}
        settings["channels"] = list(self.channels)
        settings["data"] = dataclasses.asdict(self.data)
        return settings


def checkpoints_dir(out: str | Path) -> Path:
    """Where a codec run into `out` keeps its training state: the sibling folder `out.checkpoints`."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def _latest(root: Path) -> Path | None:
    latest = root / "latest"
    return root / latest.read_text().strip() if latest.is_file() else None


def finished_codec(config: CodecTrainConfig) -> dict | None:
    """The manifest `extra` of the codec already at `out` when it is the end of this very run (same
    settings, as many steps) and no checkpoint is pending: a run resumed after it finished has nothing
    left to do."""
    manifest = Path(config.out) / "manifest.json"
    if config.resume != "auto" or _latest(checkpoints_dir(config.out)) is not None or not manifest.is_file():
        return None
    try:
        extra = json.loads(manifest.read_text()).get("extra", {})
    except (ValueError, AttributeError):
        return None
    last = min(config.steps, config.stop_after or config.steps)
    same_run = isinstance(extra, dict) and extra.get("run") == _jsonable(config.run_settings())
    return extra if same_run and extra.get("steps") == last else None


def _jsonable(settings: dict) -> dict:
    return json.loads(json.dumps(settings))


class _Counted:
    """The loader's batches, counting the samples drawn (the position an exact resume starts from)."""

    def __init__(self, loader: DataLoader, drawn: int, batch_size: int) -> None:
        self.batches, self.drawn, self.batch_size = iter(loader), drawn, batch_size

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        batch = next(self.batches)
        self.drawn += self.batch_size
        return batch


def _load_state(path: Path, config: CodecTrainConfig) -> tuple[LightCodec, dict]:
    file = path / "trainer.pt"
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, a pickle that weights_only refuses
        raise CheckpointError(f"{file} cannot be loaded ({type(err).__name__}); it is damaged: remove "
                              f"{path} (and fix {path.parent / 'latest'}) to resume from an earlier checkpoint, or "
                              "start again with --force") from None  # fmt: skip
    wanted = {"optimizer": dict, "scheduler": dict, "rng": dict, "step": int, "drawn": int, "run": dict}
    wrong = [k for k, kind in wanted.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(f"{file} lacks {', '.join(wrong)}: it was not written by vgpt-train-codec")
    settings = _jsonable(config.run_settings())
    if state["run"] != settings:
        changed = ", ".join(f"{k} {state['run'].get(k)!r} (now {v!r})" for k, v in settings.items()
                            if state["run"].get(k) != v)  # fmt: skip
        raise CheckpointError(f"the codec run in {path.parent} was started with another {changed}: resume it with "
                              "the settings it had, or start a new run with --force or another --out")  # fmt: skip
    return LightCodec.load(path / "codec"), state


def _save_state(root: Path, codec: LightCodec, opt, sched, step: int, drawn: int, config: CodecTrainConfig) -> None:
    name = f"step-{step:07d}"
    with atomic_dir(root / name, overwrite=True) as tmp:
        codec.save(tmp / "codec", extra={"steps": step, "partial": True})
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_states(),
                    "step": step, "drawn": drawn, "run": _jsonable(config.run_settings())},
                   tmp / "trainer.pt")  # fmt: skip
    with atomic_file(root / "latest", "w") as f:
        f.write(name + "\n")
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[: -config.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("saved %s", root / name)


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


def train_codec(config: CodecTrainConfig) -> tuple[LightCodec, dict[str, Any]]:
    out = Path(config.out)
    root = checkpoints_dir(out)
    if root.is_dir():
        remove_stale(root)
    resume_from = _latest(root) if config.resume == "auto" else None
    if resume_from is None and _latest(root) is not None and not config.force:
        raise FileExistsError(errno.EEXIST, "holds an unfinished codec run: continue it with --resume auto, or start "
                              "again with --force", str(root))  # fmt: skip
    if resume_from is None and out.exists() and not config.force and (not out.is_dir() or any(out.iterdir())):
        # Before any step: a codec that models were trained on must not be replaced by accident.
        raise FileExistsError(errno.EEXIST, "already exists: pass --force to replace it, or another --out", str(out))
    torch.manual_seed(config.seed)
    dataset = VideoClipDataset(config.data)
    step0, drawn, state = 0, 0, None
    if resume_from is not None:
        codec, state = _load_state(resume_from, config)
        step0, drawn = state["step"], state["drawn"]
        log.info("resuming the codec run from %s (step %d)", resume_from, step0)
    elif config.init:
        codec = LightCodec.load(config.init)
    else:
        codec = LightCodec(LightCodecConfig(channels=config.channels, latent_channels=config.latent_channels))
    if resume_from is None and root.exists():
        shutil.rmtree(root)  # a fresh run (--force): the old run's state must not be resumed into later
    sampler = StreamSampler(len(dataset), config.seed, start=drawn)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers)
    codec.train()
    if config.decoder_only:
        codec.encoder.requires_grad_(False)
    params = codec.decoder.parameters() if config.decoder_only else codec.parameters()
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.05)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"])
    batches = _Counted(loader, drawn, config.batch_size)
    last = min(config.steps, config.stop_after or config.steps)
    bar = progress_bar(last, "codec", "step", config.progress, initial=step0)
    for step in range(step0 + 1, last + 1):
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
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < last:
            _save_state(root, codec, opt, sched, step, batches.drawn, config)
            codec.train()
    bar.close()
    run = {"run": _jsonable(config.run_settings())}
    if config.decoder_only:  # the latents must stay exactly what the encoder gave: keep its scale
        codec.eval()
        return codec, {"decoder_only": True, **run}
    std = _calibrate_scale(codec, batches)
    return codec, {"latent_std_unscaled": std, **run}


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


@torch.no_grad()
def round_trip_objects(codec: LightCodec, count: int, size: int, history: int = 4, frames: int = 8) -> dict:
    """The balls a perfect latent prediction could show: `count` held-out synthetic scenes (seeds from
    EVAL_SEED_START), frames history..history + frames - 1 encoded and decoded, scored as `vgpt-eval` scores
    its codec round trip (its `codec_round_trip` at a layout of `history` observed frames and `frames`
    predicted ones at this size)."""
    scene = SceneConfig(height=size, width=size, frames=history + frames)
    scores = []
    for seed in range(EVAL_SEED_START, EVAL_SEED_START + count):
        truth = fit_frames(render_video(seed, scene)[history:], size, size)  # as vgpt-eval reads its clips
        recon = codec.decode(codec.encode(truth)).clamp(-1, 1)
        as_images = [(np.moveaxis(x.numpy(), 1, -1) + 1) / 2 for x in (recon, truth)]
        scores.append(score_objects(*as_images, scene_objects(seed, scene), history))
    summary = summarise_objects(scores)
    keep = ("presence", "presence_by_horizon", "colour_error", "colour_error_by_horizon", "scored")
    frames_set = f"{count} synthetic scenes, frames {history}..{history + frames - 1}"
    return {**{k: summary[k] for k in keep}, "set": frames_set}


def save_trained_codec(codec: LightCodec, out: str | Path, report: dict, overwrite: bool = True) -> Path:
    """The codec at `out`; then the run's checkpoints (`out.checkpoints`) are no longer needed."""
    path = codec.save(out, extra=report, overwrite=overwrite)
    shutil.rmtree(checkpoints_dir(out), ignore_errors=True)
    return path
