"""A distilled few-step student's sampler, recorded in its checkpoint (manifest `extra["student"]`).

A student is a normal vgpt checkpoint whose weights were distilled (`vgpt-distill`) from a guided
teacher: it runs K in {1, 2, 4} Euler steps at its own timestep table and one branch, the teacher's
guidance being distilled into the conditional branch. The record says which table, and what it was
distilled from and at, so that every consumer samples it the way it was trained. Torch-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from vgpt.config import ConfigError, SamplerConfig

STUDENT_STEPS = (1, 2, 4)
Stage = Literal["consistency", "self_forcing"]
KEY = "student"  # the manifest's extra field


def student_indices(teacher_steps: int, steps: int) -> list[int]:
    """Where a K-step student samples, as indices into the teacher's schedule sigma_0..sigma_S: the K + 1
    points k * S // K (e.g. 0, 12, 25, 37, 50 for K = 4 of S = 50), so that each of the student's
    steps sits on a noise level the teacher's own steps visit, where distillation trains it."""
    if steps < 1 or teacher_steps < steps:
        raise ConfigError(f"a {steps}-step student of a {teacher_steps}-step teacher: need 1 <= K <= teacher steps")
    return [k * teacher_steps // steps for k in range(steps + 1)]


@dataclass(frozen=True)
class StudentSampler:
    timesteps: tuple[float, ...]  # sigma_0 = 0 < ... < sigma_K = 1: the student's table
    guidance: float  # the teacher's guidance scale, distilled into the one branch
    shift: float  # the teacher's schedule shift
    teacher_steps: int  # the teacher's Euler steps per clip
    distilled_from: str  # the teacher weights' content hash (vgpt.checkpoint.content_hash)
    stage: Stage  # the last distillation stage these weights went through

    def __post_init__(self) -> None:
        object.__setattr__(self, "timesteps", tuple(float(t) for t in self.timesteps))
        if self.steps not in STUDENT_STEPS:
            raise ConfigError(f"student timesteps {list(self.timesteps)}: K = {self.steps} steps, expected one of "
                              f"{list(STUDENT_STEPS)}")  # fmt: skip
        self.sampler()  # checks the table

    @property
    def steps(self) -> int:
        return len(self.timesteps) - 1

    def sampler(self) -> SamplerConfig:
        """K Euler steps at the recorded table, one branch (guidance 1: no unconditional call)."""
        return SamplerConfig(steps=self.steps, shift=self.shift, guidance=1.0, timesteps=self.timesteps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentSampler:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise ConfigError(f"student record {data}: lacks {missing}; re-run vgpt-distill to rewrite it")
        return cls(**{k: data[k] for k in names})


def student_of(extra: dict[str, Any]) -> StudentSampler | None:
    """The student record of a checkpoint's manifest extra, or None for a teacher."""
    record = extra.get(KEY)
    return None if record is None else StudentSampler.from_dict(record)


def student_sampler(student: StudentSampler, steps: int | None = None, guidance: float | None = None,
                    shift: float | None = None, source: str = "the checkpoint") -> SamplerConfig:  # fmt: skip
    """The sampler a student is exported and run with: its own. Sampler options a user gives must agree
    with it (K steps, guidance 1, its shift): a student sampled otherwise is not what it was trained for."""
    own = student.sampler()
    given = {"steps": (steps, own.steps), "guidance": (guidance, own.guidance), "shift": (shift, own.shift)}
    wrong = [f"--{name} {value:g}" for name, (value, want) in given.items() if value is not None and value != want]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)}: {source} is a student distilled to {own.steps} steps with one branch "
                          f"(guidance {student.guidance:g} distilled in, shift {own.shift:g}); it samples only its "
                          "own table: leave these options out")  # fmt: skip
    return own
