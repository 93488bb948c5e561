"""Training configuration: one dataclass, loadable from the stage files shipped in `stages/`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vgpt.config import PRESETS, ConfigError, ModelConfig, from_fields, get_preset
from vgpt.training.data import DataConfig
from vgpt.training.objective import splits_into_clips

STAGES_DIR = Path(__file__).parent / "stages"


class RunConfig:
    """What every run config dataclass (TrainConfig, DistillConfig) shares: an out_dir holding the run, a
    latent cache folder relative to it, and conversion to and from the dicts of config files."""

    @property
    def latent_cache_dir(self) -> Path | None:
        return None if self.latent_cache is None else Path(self.out_dir) / self.latent_cache

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return from_fields(cls, data)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    data: DataConfig
    out_dir: str = "runs/train"
    # The model: a preset name, or `init` (a checkpoint to start from, e.g. the previous stage's).
    preset: str = "small"
    init: str | None = None
    # ModelConfig fields that a fresh model changes from its preset, e.g. {"attention_mask": "vanilla"} for
    # GPDiT's vanilla mask on gpdit-small (a checkpoint given by `init` keeps its own config).
    model: dict[str, Any] = field(default_factory=dict)
    rope_factor_policy: Literal["long", "length"] = "long"
    # The codec that turns frames into latents (a light codec or a diffusers AutoencoderKL folder).
    codec: str | None = None
    # Folder for encoded latents, so the codec runs once per video; a relative path is under out_dir.
    latent_cache: str | None = None
    # Objective (reference section 6): random clip partition, one frame per clip (stage 1), or fixed clip
    # sizes adding up to data.num_frames, e.g. [4, 4]: a model specialised to the layout it runs at.
    partition: Literal["random", "per_frame"] | tuple[int, ...] = "random"
    context_noise_beta: float = 0.9
    # Extra weight of the latent positions that differ from their frame's background (0: the reference's
    # plain mean squared error; objective.foreground_weights says how).
    foreground_weight: float = 0.0
    # Noise levels drawn as a sampler with this shift spaces its steps (1: the reference's t ~ U[0, 1]; the
    # bundled default samples with shift 3).
    timestep_shift: float = 1.0
    # Optimiser: AdamW with the reference hyper-parameters.
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-5
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    warmup_steps: int = 1000
    # After warm-up: "constant" (the reference), or "cosine" decay to lr * min_lr_ratio at the last step,
    # which lets a small model trained for few steps settle instead of ending on a noisy update.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    # An exponential moving average of the weights (0: none). Diffusion samples from EMA weights are
    # much sharper than from the last step's; checkpoints then also hold `ema/`, the weights to ship.
    ema_decay: float = 0.0
    steps: int = 10000
    batch_size: int = 8  # per process and micro-batch
    grad_accum: int = 1
    # "auto": bf16 autocast on CUDA, fp32 elsewhere.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    strategy: Literal["ddp", "fsdp"] = "ddp"  # with several processes (torchrun)
    workers: int = 0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: str | None = None  # "auto" (latest in out_dir), a checkpoint folder, or None
    tensorboard: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if isinstance(self.partition, list):  # JSON gives lists; keep the config hashable
            object.__setattr__(self, "partition", tuple(self.partition))
        if isinstance(self.data, dict):
            object.__setattr__(self, "data", DataConfig(**self.data))
        if self.init is None and self.preset not in PRESETS:
            raise ConfigError(f"TrainConfig.preset={self.preset!r}: choose one of {sorted(PRESETS)} or give init")
        if self.model and self.init is not None:
            raise ConfigError(f"TrainConfig.model={self.model}: changes a fresh preset's config; a model started from "
                              f"init={self.init!r} keeps the checkpoint's config (drop one of the two)")  # fmt: skip
        if self.init is None:
            self.model_config()  # refuses unknown fields and values the model cannot take, before any data
        for name in ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.warmup_steps < 0 or self.lr <= 0:
            raise ConfigError(f"TrainConfig: lr={self.lr} must be > 0 and warmup_steps={self.warmup_steps} >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"TrainConfig.ema_decay={self.ema_decay}: must be in [0, 1) (0 turns the average off)")
        if self.timestep_shift <= 0:
            raise ConfigError(f"TrainConfig.timestep_shift={self.timestep_shift}: must be > 0 (1: t ~ U[0, 1])")
        if self.foreground_weight < 0:
            raise ConfigError(f"TrainConfig.foreground_weight={self.foreground_weight}: must be >= 0 (0: plain MSE)")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")
        if self.data.num_frames < 2:
            raise ConfigError(f"TrainConfig.data.num_frames={self.data.num_frames}: need >= 2 to split into clips")
        if isinstance(self.partition, tuple):
            sizes = self.partition
            if not splits_into_clips(sizes, self.data.num_frames):
                raise ConfigError(f"TrainConfig.partition={list(sizes)}: fixed clip sizes need at least 2 positive "
                                  f"sizes adding up to data.num_frames={self.data.num_frames}")  # fmt: skip
        elif self.partition not in ("random", "per_frame"):
            raise ConfigError(
                f"TrainConfig.partition={self.partition!r}: 'random', 'per_frame' or a list of clip sizes"
            )

    def model_config(self) -> ModelConfig:
        """The config of a fresh model: the preset with `rope_factor_policy` and the `model` changes."""
        changes = {"rope_factor_policy": self.rope_factor_policy, **self.model}
        return from_fields(ModelConfig, {**get_preset(self.preset).to_dict(), **changes})


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """A JSON config file, or a stage name shipped with vgpt (stage1 ... stage4, bundled)."""
    return TrainConfig.from_dict(read_config(path, overrides))


def read_config(path: str | Path, overrides: dict[str, Any], shipped: str = "*.json",
                what: str = "shipped stage") -> dict[str, Any]:  # fmt: skip
    """The fields of a JSON config file, or of a stage shipped in `stages/` (named without .json), with
    `overrides` applied ("data.x" sets a field of the data section; None leaves a field as it is)."""
    file = Path(path)
    if not file.is_file():
        file = STAGES_DIR / f"{path}.json"
    if not file.is_file():
        names = sorted(p.stem for p in STAGES_DIR.glob(shipped))
        raise ConfigError(f"{path}: no such config file or {what} (shipped: {names})")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{file}: invalid JSON ({err})") from None
    data.pop("//", None)  # a comment field
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("data."):
            data.setdefault("data", {})[key[5:]] = value
        else:
            data[key] = value
    return data
