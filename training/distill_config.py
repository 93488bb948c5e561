"""Distillation configuration: one dataclass, loadable from the stage files shipped in `stages/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vgpt.config import ConfigError
from vgpt.student import STUDENT_STEPS
from vgpt.training.config import RunConfig, read_config
from vgpt.training.data import DataConfig

STAGES = ("consistency", "self_forcing")


@dataclass(frozen=True)
class DistillConfig(RunConfig):
    data: DataConfig
    # "consistency" (stage 1: causal consistency distillation on ground-truth history) or "self_forcing"
    # (stage 2: the student's own rollouts fill the cache, distribution matching against the teacher).
    stage: Literal["consistency", "self_forcing"] = "consistency"
    out_dir: str = "runs/distill"
    # The guided teacher: a vgpt checkpoint, a training run, or None for the bundled default.
    teacher: str | None = None
    # Where the student starts: None is the teacher's weights (stage 1); stage 2 starts from a stage-1
    # student (its checkpoint or run), whose table and teacher it keeps.
    init: str | None = None
    codec: str | None = None  # None: the codec beside the teacher (the bundled one for the default)
    latent_cache: str | None = None  # a relative path is under out_dir
    student_steps: int = 4  # K, one of 1, 2, 4
    # The teacher's sampler; None takes the teacher's own settings (its defaults.json).
    teacher_steps: int | None = None
    guidance: float | None = None
    shift: float | None = None
    history: int = 4  # M ground-truth frames the first clip conditions on
    clip: int = 4  # G frames per clip
    # Stage 1: the consistency target is an EMA copy of the student, theta- <- decay theta- + (1 - decay) theta
    # (LCM's 0.95); the student's own weights are what is saved and shipped.
    target_decay: float = 0.95
    # Stage 1: weight of a ground-truth term, the squared error of the student's x0 prediction to the true
    # clip after the true history, added to the consistency loss (0: consistency alone). The teacher is
    # scored against the true frames too; this term pulls the student toward them where the teacher's
    # trajectory end misses them.
    data_weight: float = 0.0
    # Stage 2: clips rolled out per sample (the second onwards conditions on the student's own clips), the
    # noise levels at which the distribution-matching gradient is taken, and the critic (the student's
    # "fake" score, a copy of the teacher that keeps learning to denoise the student's clips).
    num_clips: int = 2
    dmd_sigma: tuple[float, float] = (0.02, 0.98)
    critic_lr: float = 1e-4
    critic_updates: int = 1  # critic steps per student step (DMD2's two time-scale rule uses 5)
    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    steps: int = 1000
    batch_size: int = 8  # per process
    workers: int = 0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    resume: str | None = None  # "auto" (latest in out_dir), a checkpoint folder, or None
    tensorboard: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("betas", "dmd_sigma"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.data, dict):
            object.__setattr__(self, "data", DataConfig(**self.data))
        if self.stage not in STAGES:
            raise ConfigError(f"DistillConfig.stage={self.stage!r}: choose one of {list(STAGES)}")
        if self.student_steps not in STUDENT_STEPS:
            raise ConfigError(f"DistillConfig.student_steps={self.student_steps}: choose one of {list(STUDENT_STEPS)}")
        for name in ("history", "clip", "num_clips", "steps", "batch_size", "log_every", "checkpoint_every",
                     "keep_checkpoints", "critic_updates"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"DistillConfig.{name}={value!r}: must be a positive integer")
        if self.teacher_steps is not None and self.teacher_steps < self.student_steps:
            raise ConfigError(f"DistillConfig.teacher_steps={self.teacher_steps}: fewer than the student's "
                              f"{self.student_steps} steps")  # fmt: skip
        if self.guidance is not None and self.guidance < 1.0:
            raise ConfigError(f"DistillConfig.guidance={self.guidance}: must be >= 1.0 (1.0 = no guidance)")
        if self.shift is not None and self.shift <= 0:
            raise ConfigError(f"DistillConfig.shift={self.shift}: must be > 0")
        if self.data_weight < 0 or (self.data_weight and self.stage != "consistency"):
            raise ConfigError(f"DistillConfig.data_weight={self.data_weight}: a weight >= 0 of stage 1's ground-truth "
                              "term (stage 2 has no true clip to compare with)")  # fmt: skip
        if not 0.0 <= self.target_decay < 1.0:
            raise ConfigError(f"DistillConfig.target_decay={self.target_decay}: must be in [0, 1)")
        lo, hi = self.dmd_sigma
        if not 0.0 < lo < hi < 1.0:
            raise ConfigError(f"DistillConfig.dmd_sigma={list(self.dmd_sigma)}: need 0 < low < high < 1")
        if self.lr <= 0 or self.critic_lr <= 0 or self.warmup_steps < 0:
            raise ConfigError(f"DistillConfig: lr={self.lr} and critic_lr={self.critic_lr} must be > 0, "
                              f"warmup_steps={self.warmup_steps} >= 0")  # fmt: skip
        if self.data.num_frames < self.frames_needed:
            raise ConfigError(f"DistillConfig.data.num_frames={self.data.num_frames}: stage {self.stage} reads "
                              f"{self.frames_needed} frames per sample (history {self.history}"
                              f"{' + clip ' + str(self.clip) if self.stage == 'consistency' else ''})")  # fmt: skip

    @property
    def frames_needed(self) -> int:
        """Ground-truth frames per sample: history and target clip (stage 1), the history alone (stage 2)."""
        return self.history + (self.clip if self.stage == "consistency" else 0)


def load_distill_config(path: str | Path, **overrides: Any) -> DistillConfig:
    """A JSON config file, or a distillation stage shipped with vgpt (distill-consistency, ...)."""
    data = read_config(path, overrides, "distill-*.json", "shipped distillation stage")
    if "data" not in data:
        raise ConfigError(f"{path}: no data section; give the training videos (--data)")
    return DistillConfig.from_dict(data)
