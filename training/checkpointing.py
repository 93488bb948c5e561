"""Periodic, atomic training checkpoints and exact resume.

out_dir/checkpoints/step-0000500/ holds `model/` (a vgpt checkpoint: safetensors + manifest) and
`trainer.pt` (optimizer, scheduler, RNG states, step, data position, the training config), loaded
with weights_only=True. `out_dir/checkpoints/latest` names the newest complete one.
"""

from __future__ import annotations

import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from vgpt.atomic import atomic_dir, atomic_file, remove_stale
from vgpt.checkpoint import CheckpointError, load_checkpoint, save_state
from vgpt.model import VideoGPT
from vgpt.training.ema import WeightAverage

log = logging.getLogger(__name__)


@dataclass
class TrainerState:
    step: int  # optimizer steps done
    data_position: int  # samples this rank has drawn from its sampler
    extra: dict[str, Any] = field(default_factory=dict)  # a trainer's own state (trainer.pt "extra")


def rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    random.setstate((states["python_version"], tuple(states["python"]), None))


def checkpoint_root(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def save_training_checkpoint(
    out_dir: str | Path,
    model: torch.nn.Module,
    bare: VideoGPT,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    config: dict[str, Any],
    main: bool,
    keep: int,
    average: WeightAverage | None = None,
    model_extra: dict[str, Any] | None = None,
) -> Path | None:
    """Gather the full state (every rank takes part), write it from the main rank, atomically. With a
    weight average, `ema/` holds the averaged weights (the ones to evaluate and ship) beside `model/`.
    `model_extra` joins the manifest of `model/`; `state.extra` (tensors and plain values) is saved in
    trainer.pt and restored into the state on resume."""
    model_sd, optim_sd = get_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    averaged = average.state_dict() if average is not None else None
    if not main:
        return None
    root = checkpoint_root(out_dir)
    name = f"step-{state.step:07d}"
    with atomic_dir(root / name, overwrite=True) as tmp:
        extra = {"step": state.step, "train_config": config, **(model_extra or {})}
        save_state(bare.config, model_sd, tmp / "model", extra=extra)
        if average is not None:
            ema_sd = {k: averaged[k].to(v.dtype) if k in averaged else v for k, v in model_sd.items()}
            save_state(bare.config, ema_sd, tmp / "ema", extra={**extra, "ema_decay": average.decay})
        torch.save(
            {
                "ema": averaged,
                "optimizer": optim_sd,
                "scheduler": scheduler.state_dict(),
                "rng": rng_states(),
                "step": state.step,
                "data_position": state.data_position,
                "config": config,
                "extra": state.extra,
            },
            tmp / "trainer.pt",
        )
    with atomic_file(root / "latest", "w") as f:
        f.write(name + "\n")
    old = sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    log.info("saved %s", root / name)
    return root / name


def remove_stale_checkpoints(out_dir: str | Path) -> None:
    """Remove the checkpoint temporaries (`.step-*.tmp`, `.latest.*.tmp`) of runs that were killed
    while writing them; a run still writing keeps its own."""
    for path in remove_stale(checkpoint_root(out_dir)):
        log.info("removed %s, left by a run that was stopped while saving", path)


def _load_trainer(path: Path) -> dict[str, Any]:
    """trainer.pt, refused with the file's name unless it holds what a training checkpoint saves."""
    file = path / "trainer.pt"
    try:
        trainer = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, a pickle that weights_only refuses
        raise CheckpointError(f"{file} cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:200]}): "
                              "it is damaged or was not written by vgpt-train or vgpt-distill; resume from an "
                              "earlier checkpoint (--resume checkpoints/step-...) or start a new "
                              "run") from None  # fmt: skip
    wanted = {"optimizer": dict, "scheduler": dict, "rng": dict, "step": int, "data_position": int}
    if not isinstance(trainer, dict):
        raise CheckpointError(f"{file} holds a {type(trainer).__name__}, not a training state; resume from an "
                              "earlier checkpoint or start a new run")  # fmt: skip
    wrong = [k for k, kind in wanted.items() if not isinstance(trainer.get(k), kind) or isinstance(trainer[k], bool)]
    if not isinstance(trainer.get("extra", {}), dict):  # vgpt-distill's own state (EMA target, critic)
        wrong.append("extra")
    if wrong or trainer["step"] < 0 or trainer["data_position"] < 0:
        raise CheckpointError(f"{file} lacks or has malformed {', '.join(wrong) or 'step/data_position'}: it was "
                              "not written by vgpt-train or vgpt-distill; resume from an earlier checkpoint or start a "
                              "new run")  # fmt: skip
    return trainer


def find_resume(resume: str | None, out_dir: str | Path) -> Path | None:
    """'auto': the latest complete checkpoint in out_dir (None if there is none); else the folder. None
    (a fresh run) is refused where out_dir already holds a run's checkpoints: its saves would overwrite
    them step by step and prune the rest, so the user names the run to continue or another folder."""
    if resume is None:
        latest = checkpoint_root(out_dir) / "latest"
        if latest.is_file():
            raise CheckpointError(f"{out_dir} already holds a run (its latest checkpoint: "
                                  f"{latest.read_text().strip()}); a fresh run would overwrite it: continue that run "
                                  "with --resume auto, or give another --out")  # fmt: skip
        return None
    if resume == "auto":
        latest = checkpoint_root(out_dir) / "latest"
        if not latest.is_file():
            return None
        path = checkpoint_root(out_dir) / latest.read_text().strip()
    else:
        path = Path(resume)
    if not (path / "trainer.pt").is_file() or not (path / "model").is_dir():
        raise CheckpointError(f"{path} is not a training checkpoint (needs model/ and trainer.pt)")
    return path


def load_training_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    device: torch.device,
    average: WeightAverage | None = None,
) -> TrainerState:
    """Restore weights, optimizer, scheduler, weight average and RNG states into an already wrapped model."""
    weights = load_checkpoint(path / "model").model.state_dict()
    trainer = _load_trainer(path)
    try:
        set_state_dict(
            model,
            optimizer,
            model_state_dict=weights,
            optim_state_dict=trainer["optimizer"],
            options=StateDictOptions(full_state_dict=True),
        )
        scheduler.load_state_dict(trainer["scheduler"])
        if average is not None:
            if trainer.get("ema") is None:
                raise CheckpointError(f"{path} has no weight average: resume it with ema_decay 0, or start a new run")
            average.load_state_dict(trainer["ema"])
        set_rng_states(trainer["rng"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise CheckpointError(f"{path / 'trainer.pt'} does not fit this model and optimizer ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''}); resume from an earlier "
                              "checkpoint or start a new run") from None  # fmt: skip
    return TrainerState(step=trainer["step"], data_position=trainer["data_position"], extra=trainer.get("extra", {}))
