"""Few-step students distilled from a guided teacher: `distill(config)`; `vgpt-distill` is a thin CLI over it.

The student is the teacher's network sampled with K in {1, 2, 4} Euler steps at a recorded table and
one branch: the teacher's guidance is distilled into the conditional branch (vgpt.student). Both
stages run every model call through the inference code (`CachedPredictor`: the history prefilled
into a KV cache, the noisy clip against it).

Stage 1, causal consistency distillation (Song et al. 2023, consistency distillation; LCM's
guided teacher step, Luo et al. 2023): a ground-truth clip x after ground-truth history is noised to
a level sigma_n of the teacher's schedule, z_n = sigma_n x + (1 - sigma_n) eps; the teacher takes one
guided Euler step to z_{n+1}; the target is the x0 prediction of an EMA copy of the student at
(z_{n+1}, sigma_{n+1}) (z itself at sigma = 1, where the clip is clean); the loss is the squared
error of the student's x0 prediction at (z_n, sigma_n) to it. A student that is consistent along the
teacher's guided trajectories maps any point of one to its end, so K Euler steps of its x0
predictions (DDIM-like re-noising along the implied noise) sample it.

Stage 2, training on its own rollouts (Self-Forcing, Huang et al. 2025): from ground-truth history
the student rolls out `num_clips` clips exactly as inference does (its own clips fill the cache), and
at a random step of each clip its x0 prediction takes a distribution-matching gradient (DMD, Yin et
al. 2024): the difference between a critic's x0 prediction (the "fake" score: a copy of the teacher
trained to denoise the student's clips) and the guided teacher's (the "real" score) at a random
noise level, normalised by the mean distance to the teacher's; the critic is trained alongside.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vgpt.checkpoint import content_hash, load_checkpoint
from vgpt.codecs import LatentCodec, load_codec
from vgpt.config import ConfigError, SamplerConfig, Target
from vgpt.default_model import resolve_checkpoint
from vgpt.model import VideoGPT
from vgpt.predictors import CachedPredictor
from vgpt.sampler import euler_step, guide, sample, schedule, velocity
from vgpt.student import KEY, StudentSampler, student_indices
from vgpt.training import distributed
from vgpt.training.checkpointing import TrainerState, find_resume, load_training_checkpoint, save_training_checkpoint
from vgpt.training.distill_config import DistillConfig
from vgpt.training.loop import (
    clip_dataset,
    clip_loader,
    encode_frames,
    lr_scheduler,
    optimizer_for,
    step_progress,
    step_seed,
    tensorboard_writer,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Teacher:
    model: VideoGPT
    sampler: SamplerConfig  # its own: S steps, guidance, shift
    weights_sha256: str
    codec: str  # the codec folder its latents come from


def load_teacher(config: DistillConfig) -> Teacher:
    """The teacher of a config, with the sampler it is distilled at (the config's, else its own defaults)."""
    # The bundled default teaches with its teacher, whichever bundled model the commands take by default.
    model = "teacher" if config.teacher is None else None
    checkpoint, codec, defaults = resolve_checkpoint(config.teacher, config.codec, model=model)
    loaded = load_checkpoint(checkpoint)
    if loaded.student is not None:
        raise ConfigError(f"teacher {checkpoint} is itself a distilled student; give the guided teacher it came from")
    sampler = defaults.sampler(config.teacher_steps, config.guidance, config.shift)
    if sampler.steps < config.student_steps:
        raise ConfigError(f"the teacher's {sampler.steps} steps are fewer than the student's {config.student_steps}")
    return Teacher(loaded.model.requires_grad_(False), sampler, loaded.weights_sha256, codec)


def student_record(teacher: Teacher, steps: int, stage: str) -> StudentSampler:
    """The K-step table at the teacher's own noise levels (`student_indices`) and what it is distilled from."""
    sigmas = schedule(teacher.sampler.steps, teacher.sampler.shift)
    table = [float(sigmas[i]) for i in student_indices(teacher.sampler.steps, steps)]
    sampler = teacher.sampler
    return StudentSampler(timesteps=tuple(table), guidance=sampler.guidance, shift=sampler.shift,
                          teacher_steps=sampler.steps, distilled_from=teacher.weights_sha256, stage=stage)  # fmt: skip


def build_student(config: DistillConfig, teacher: Teacher) -> tuple[VideoGPT, StudentSampler]:
    """The teacher's weights (no init), or a student to continue (a stage-1 one for stage 2), which must be
    of this teacher and this K."""
    record = student_record(teacher, config.student_steps, config.stage)
    if config.init is None:
        return copy.deepcopy(teacher.model).requires_grad_(True).train(), record
    loaded = load_checkpoint(config.init)
    if loaded.model.config != teacher.model.config:
        raise ConfigError(f"DistillConfig.init={config.init}: its model ({loaded.model.config.name}) is not the "
                          "teacher's shape")  # fmt: skip
    found = loaded.student
    if found is not None:
        if found.distilled_from != teacher.weights_sha256:
            raise ConfigError(f"DistillConfig.init={config.init} was distilled from weights "
                              f"{found.distilled_from[:12]}..., not this teacher's {teacher.weights_sha256[:12]}...; "
                              "give its own teacher")  # fmt: skip
        if found.timesteps != record.timesteps or found.guidance != record.guidance:
            raise ConfigError(f"DistillConfig.init={config.init} is a {found.steps}-step student at guidance "
                              f"{found.guidance}; this run makes a {record.steps}-step one at guidance "
                              f"{record.guidance}")  # fmt: skip
    return loaded.model.requires_grad_(True).train(), record


def x0(output: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor, prediction: Target) -> torch.Tensor:
    """The clean-clip estimate of a model output: itself for x-prediction, z + (1 - sigma) v for velocity."""
    if prediction == "x":
        return output.to(torch.float32)
    return z + (1.0 - sigma) * output.to(torch.float32)


def per_sample(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] noise levels broadcast against [B, G, C, h, w]."""
    return sigma.reshape(-1, *([1] * (like.ndim - 1)))


def branches_over(model: VideoGPT, sampler: SamplerConfig, history: torch.Tensor, clip_frames: int):
    """(conditional, unconditional or None) of a fresh cached predictor over `history` [B, M, ...]: the
    history runs once into its own KV cache, as at inference; the branches take (z, t [B, G])."""
    predictor = CachedPredictor(model, sampler)
    predictor.prepare(history, 1, clip_frames)
    return predictor.branches(history, 0, clip_frames)


def guided_velocity(branches, z: torch.Tensor, sigma: torch.Tensor, scale: float, prediction: Target):
    """v_u + scale (v_c - v_u) at z [B, G, ...], noise levels sigma [B], from (conditional, unconditional or
    None) branches taking (z, t [B, G])."""
    cond, uncond = branches
    t = sigma[:, None].expand(z.shape[0], z.shape[1])  # [B, G]
    s = per_sample(sigma, z)
    v_cond = velocity(cond(z, t), z, s, prediction)
    v_uncond = None if uncond is None else velocity(uncond(z, t), z, s, prediction)
    return guide(v_cond, v_uncond, scale)


def guided_x0(model: VideoGPT, sampler: SamplerConfig, history: torch.Tensor, z: torch.Tensor,
              sigma: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The guided x0 prediction at z [B, G, ...], noise levels sigma [B]: x0 of the guided velocity."""
    branches = branches_over(model, sampler, history, z.shape[1])
    v = guided_velocity(branches, z, sigma, sampler.guidance, model.config.prediction)
    return z + (1.0 - per_sample(sigma, z)) * v


def one_branch_x0(model: VideoGPT, history: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The conditional branch's x0 prediction (the student's and the critic's single branch)."""
    cond, _ = branches_over(model, SamplerConfig(guidance=1.0), history, z.shape[1])
    t = sigma[:, None].expand(z.shape[0], z.shape[1])  # [B, G]
    return x0(cond(z, t), z, per_sample(sigma, z), model.config.prediction)


def consistency_target(z: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, teacher_branches,
                       target_x0, scale: float, prediction: Target) -> torch.Tensor:  # fmt: skip
    """The stage-1 target at z [B, G, ...], levels sigma -> sigma_next [B]: the teacher's guided Euler step
    z_next = z + (sigma_next - sigma) (v_u + scale (v_c - v_u)) from its (conditional, unconditional)
    branches, then target_x0(z_next, sigma_next); z_next itself where sigma_next = 1, the consistency
    function's boundary (a sample at sigma = 1 is the clean clip)."""
    s, s_next = per_sample(sigma, z), per_sample(sigma_next, z)
    z_next = euler_step(z, guided_velocity(teacher_branches, z, sigma, scale, prediction), s, s_next)
    return torch.where(s_next >= 1.0, z_next, target_x0(z_next, sigma_next))


def consistency_loss(student: VideoGPT, target: VideoGPT, teacher: Teacher, latents: torch.Tensor, history: int,
                     clip: int, generator: torch.Generator,
                     data_weight: float = 0.0) -> dict[str, torch.Tensor]:  # fmt: skip
    """Stage 1 on clean latents [B, >= M + G, C, h, w]: the student's x0 at (z_n, sigma_n) against the EMA
    target's after the teacher's guided Euler step (`consistency_target`); n uniform per sample. Returns
    {"loss": what to minimise, "consistency": that term, "data": the x0 error to the true clip}; `loss` adds
    data_weight times the last."""
    past, x = latents[:, :history], latents[:, history : history + clip].to(torch.float32)
    B = x.shape[0]
    sigmas = schedule(teacher.sampler.steps, teacher.sampler.shift)
    n = torch.randint(0, teacher.sampler.steps, (B,), generator=generator)
    sigma, sigma_next = sigmas[n].to(x.device), sigmas[n + 1].to(x.device)  # [B]
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    z = per_sample(sigma, x) * x + (1 - per_sample(sigma, x)) * eps
    with torch.no_grad():
        branches = branches_over(teacher.model, teacher.sampler, past, clip)
        aim = consistency_target(z, sigma, sigma_next, branches, lambda zn, sn: one_branch_x0(target, past, zn, sn),
                                 teacher.sampler.guidance, teacher.model.config.prediction)  # fmt: skip
    predicted = one_branch_x0(student, past, z, sigma)
    consistency = (predicted - aim).pow(2).mean()
    data = (predicted - x).pow(2).mean()
    return {"loss": consistency + data_weight * data, "consistency": consistency, "data": data}


@dataclass
class RolledClip:
    """One clip of a student rollout: the history it conditioned on, the sampled clip, and the student's
    x0 prediction at the chosen exit step (with gradient)."""

    history: torch.Tensor  # [B, M', C, h, w]
    clip: torch.Tensor  # [B, G, C, h, w], as inference samples it
    estimate: torch.Tensor  # [B, G, C, h, w], x0 at step `exit` (differentiable)


def student_rollout(student: VideoGPT, record: StudentSampler, history: torch.Tensor, num_clips: int,
                    clip_frames: int, noise: torch.Generator, exits: list[int],
                    on_clip=None) -> list[RolledClip]:  # fmt: skip
    """Roll out `num_clips` clips from `history` [B, M, ...] exactly as `CachedPredictor.predict` with
    window M: each clip's K steps sampled without gradient from noise drawn from `noise`, the newest M
    frames (the student's own clips after the first) in one cache. At step exits[k] of clip k the student's
    x0 prediction is recomputed with gradient. `on_clip(rolled)` runs after each clip, before the cache
    changes (the place to back-propagate through it)."""
    sampler = record.sampler()
    predictor = CachedPredictor(student, sampler, window=history.shape[1])
    frames = history.to(torch.float32)
    B, M, C, h, w = frames.shape
    predictor.prepare(frames, num_clips, clip_frames)
    sigmas = torch.tensor(record.timesteps, dtype=torch.float32)
    out = []
    for k in range(num_clips):
        first = max(0, frames.shape[1] - M)
        z = torch.randn((B, clip_frames, C, h, w), generator=noise).to(frames.device)  # predict()'s draw on a CPU
        with torch.no_grad():  # the cache holds the history without gradient (Self-Forcing's truncation)
            cond, _ = predictor.branches(frames, first, clip_frames)
        inputs = []

        def denoise(zt, sigma, cond=cond, inputs=inputs):
            inputs.append(zt)
            return cond(zt, sigma.expand(zt.shape[0], zt.shape[1])), None

        with torch.no_grad():
            clip = sample(denoise, z, sampler, student.config.prediction)
        zj = inputs[exits[k]]
        sigma = sigmas[exits[k]].expand(B).to(frames.device)
        t = sigma[:, None].expand(B, clip_frames)  # [B, G]
        estimate = x0(cond(zj, t), zj, per_sample(sigma, zj), student.config.prediction)
        rolled = RolledClip(frames[:, first:], clip, estimate)
        if on_clip is not None:
            on_clip(rolled)
        out.append(rolled)
        frames = torch.cat([frames, clip], dim=1)
    return out


def dmd_loss(rolled: RolledClip, teacher: Teacher, critic: VideoGPT, dmd_sigma: tuple[float, float],
             generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """The distribution-matching surrogate of one clip: its gradient on the estimate is (fake - real) / w, the
    critic's x0 minus the guided teacher's at a random noise level, w the mean |estimate - real| per sample."""
    x = rolled.estimate
    B = x.shape[0]
    lo, hi = dmd_sigma
    sigma = (lo + (hi - lo) * torch.rand(B, generator=generator)).to(x.device)
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    with torch.no_grad():
        z = per_sample(sigma, x) * x + (1 - per_sample(sigma, x)) * eps
        real = guided_x0(teacher.model, teacher.sampler, rolled.history, z, sigma)
        fake = one_branch_x0(critic, rolled.history, z, sigma)
        weight = (x - real).abs().mean(dim=tuple(range(1, x.ndim)), keepdim=True).clamp_min(1e-6)
        aim = x - (fake - real) / weight
    return 0.5 * (x - aim).pow(2).mean()


def critic_loss(critic: VideoGPT, rolled: RolledClip, generator: torch.Generator) -> torch.Tensor:
    """The critic learns to denoise the student's clips: x0 error at a noise level sigma ~ U[0, 1)."""
    x = rolled.estimate.detach()
    B = x.shape[0]
    sigma = torch.rand(B, generator=generator).to(x.device)
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    z = per_sample(sigma, x) * x + (1 - per_sample(sigma, x)) * eps
    return (one_branch_x0(critic, rolled.history, z, sigma) - x).pow(2).mean()


@torch.no_grad()
def update_target(target: VideoGPT, student: VideoGPT, decay: float) -> None:
    """theta- <- decay * theta- + (1 - decay) * theta."""
    torch._foreach_lerp_(list(target.parameters()), [p.detach() for p in student.parameters()], 1.0 - decay)


def distill(config: DistillConfig) -> Path:
    """Distill; returns the folder of the last checkpoint (its `model/` is the student)."""
    return distributed.launched(_distill, config)


def _distill(config: DistillConfig, info: distributed.DistInfo) -> Path:
    out = Path(config.out_dir)
    teacher = load_teacher(config)
    config = config.replace(codec=config.codec or teacher.codec)
    codec: LatentCodec = load_codec(config.codec)
    if isinstance(codec, torch.nn.Module):
        codec = codec.to(info.device).eval()
    dataset = clip_dataset(config, codec)
    teacher = Teacher(teacher.model.to(info.device), teacher.sampler, teacher.weights_sha256, teacher.codec)
    student, record = build_student(config, teacher)
    student = student.to(info.device)
    if config.stage == "self_forcing":
        # The history's keys come from a cache filled without gradient: the clean-frame embedding gets none.
        student.input_x_embedder.requires_grad_(False)
    optimizer = optimizer_for(student, config)
    scheduler = lr_scheduler(optimizer, config)
    helper = copy.deepcopy(student).requires_grad_(False)  # stage 1: the EMA target; stage 2: unused
    critic = critic_optimizer = None
    if config.stage == "self_forcing":
        critic = copy.deepcopy(teacher.model).requires_grad_(True).train()
        critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=config.critic_lr, betas=config.betas,
                                             eps=config.eps, weight_decay=0.0)  # fmt: skip
    state = TrainerState(step=0, data_position=0)
    resume = find_resume(config.resume, out)
    if resume is not None:
        _check_stage(resume, config)
        state = load_training_checkpoint(resume, student, optimizer, scheduler, info.device)
        _restore(state.extra, helper, critic, critic_optimizer, config)
        log.info("resumed from %s at step %d", resume, state.step)

    batches = iter(clip_loader(dataset, config, info, state.data_position))
    writer = tensorboard_writer(config, out) if info.main else None
    bar = step_progress(config, info, state.step)
    last = None
    tick, ticked = time.perf_counter(), state.step
    while state.step < config.steps:
        batch = next(batches).to(info.device)
        state.data_position += len(batch)
        latents = batch if dataset.cache is not None else encode_frames(codec, batch)
        # Every draw of a step comes from (seed, step, rank): exact on resume.
        gen = torch.Generator().manual_seed(step_seed(config.seed, state.step, info.rank, 0))
        optimizer.zero_grad(set_to_none=True)
        if config.stage == "consistency":
            terms = consistency_loss(student, helper, teacher, latents, config.history, config.clip, gen,
                                     config.data_weight)  # fmt: skip
            terms["loss"].backward()
            figures = {"loss": terms["loss"].item()}
            if config.data_weight:
                figures.update(consistency=terms["consistency"].item(), data=terms["data"].item())
        else:
            figures = _self_forcing_step(config, student, record, teacher, critic, critic_optimizer, latents, gen,
                                         state.step, info)  # fmt: skip
        distributed.average_gradients(student, info)
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        if config.stage == "consistency":
            update_target(helper, student, config.target_decay)
        state.step += 1
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in figures.items()})
        if state.step % config.log_every == 0 or state.step == config.steps:
            elapsed = time.perf_counter() - tick
            if info.main:
                log.info("step %d %s s/step %.3f", state.step, " ".join(f"{k} {v:.5f}" for k, v in figures.items()),
                         elapsed / (state.step - ticked))  # fmt: skip
                if writer is not None:
                    for key, value in figures.items():
                        writer.add_scalar(f"distill/{key}", value, state.step)
                    writer.add_scalar("distill/lr", scheduler.get_last_lr()[0], state.step)
            tick, ticked = time.perf_counter(), state.step
        if state.step % config.checkpoint_every == 0 or state.step == config.steps:
            state.extra = _trainer_extra(helper, critic, critic_optimizer, config)
            last = save_training_checkpoint(out, student, student, optimizer, scheduler, state, config.to_dict(),
                                            info.main, config.keep_checkpoints,
                                            model_extra={KEY: record.to_dict()})  # fmt: skip
            distributed.barrier(info)
    bar.close()
    if writer is not None:
        writer.close()
    if info.enabled:  # each rank records a digest of its parameters: gradient averaging keeps them equal
        (out / f"rank-{info.rank}.digest").write_text(content_hash(student.state_dict()) + "\n")
    if last is None:  # resumed at or past the last step: point at what is there
        last = find_resume("auto", out)
    return last


def _self_forcing_step(config: DistillConfig, student: VideoGPT, record: StudentSampler, teacher: Teacher,
                       critic: VideoGPT, critic_optimizer, latents: torch.Tensor, gen: torch.Generator, step: int,
                       info: distributed.DistInfo) -> dict[str, float]:  # fmt: skip
    """One student update by distribution matching on its own rollouts, then the critic's updates."""
    noise = torch.Generator().manual_seed(step_seed(config.seed, step, info.rank, 1))
    exits = torch.randint(0, record.steps, (config.num_clips,), generator=gen).tolist()
    total = 0.0

    def backward(rolled: RolledClip) -> None:
        nonlocal total
        loss = dmd_loss(rolled, teacher, critic, config.dmd_sigma, gen) / config.num_clips
        loss.backward()  # now, before the next clip's frames change the cache this graph read
        total += loss.item()

    history = latents[:, : config.history]
    rolled = student_rollout(student, record, history, config.num_clips, config.clip, noise, exits, backward)
    critic_total = 0.0
    for _ in range(config.critic_updates):
        critic_optimizer.zero_grad(set_to_none=True)
        for clip in rolled:
            loss = critic_loss(critic, clip, gen) / config.num_clips
            loss.backward()
            critic_total += loss.item() / config.critic_updates
        distributed.average_gradients(critic, info)
        torch.nn.utils.clip_grad_norm_(critic.parameters(), config.grad_clip)
        critic_optimizer.step()
    return {"dmd": total, "critic": critic_total}


def _trainer_extra(helper: VideoGPT, critic, critic_optimizer, config: DistillConfig) -> dict:
    if config.stage == "consistency":
        return {"target": {k: v.detach().cpu() for k, v in helper.state_dict().items()}}
    return {"critic": {k: v.detach().cpu() for k, v in critic.state_dict().items()},
            "critic_optimizer": critic_optimizer.state_dict()}  # fmt: skip


def _check_stage(path: Path, config: DistillConfig) -> None:
    manifest = json.loads((path / "model" / "manifest.json").read_text())
    found = manifest.get("extra", {}).get(KEY, {}).get("stage")
    if found != config.stage:
        raise ConfigError(f"{path} is not a {config.stage} distillation checkpoint (its stage: {found}); resume it "
                          "with its own stage, or start a new out_dir")  # fmt: skip


def _restore(extra: dict, helper: VideoGPT, critic, critic_optimizer, config: DistillConfig) -> None:
    if config.stage == "consistency":
        helper.load_state_dict(extra["target"])
    else:
        critic.load_state_dict(extra["critic"])
        critic_optimizer.load_state_dict(extra["critic_optimizer"])
