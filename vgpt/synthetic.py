"""A synthetic physics video generator: balls under gravity bouncing off the walls and the floor.

Deterministic by seed, written as real video files so that training, evaluation and the runtime
read exactly what they would read from a camera. Balls differ in size and colour and pass in front
of each other (depth order), and some scenes have a fixed pillar in front of the balls (occlusion).
It is our stand-in for real footage in tests, for the bundled model, and for calibration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Seeds at or above this are never used for training: the held-out evaluation set starts here.
EVAL_SEED_START = 1_000_000


@dataclass(frozen=True)
class SceneConfig:
    height: int = 64
    width: int = 64
    frames: int = 32
    fps: float = 10.0
    min_balls: int = 1
    max_balls: int = 3
    min_radius: float = 4.0
    max_radius: float = 9.0
    max_speed: float = 3.5  # px per frame, initial
    gravity: float = 0.35  # px per frame^2, downwards
    restitution: float = 0.9  # speed kept by a bounce
    pillar_probability: float = 0.25  # chance of a static occluding pillar

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"SceneConfig: frames of {self.height}x{self.width} px; use at least 16x16")
        if self.frames < 1:
            raise ValueError(f"SceneConfig.frames={self.frames}: must be positive")
        if not 1 <= self.min_balls <= self.max_balls:
            raise ValueError(f"SceneConfig: need 1 <= min_balls <= max_balls, got {self.min_balls}, {self.max_balls}")


def render_video(seed: int, config: SceneConfig | None = None) -> np.ndarray:
    """The scene of `seed` as uint8 RGB [F, H, W, 3]."""
    c = config or SceneConfig()
    rng = np.random.default_rng(seed)
    H, W = c.height, c.width
    n = int(rng.integers(c.min_balls, c.max_balls + 1))
    radius = rng.uniform(c.min_radius, c.max_radius, n)
    pos = np.stack([rng.uniform(radius, W - radius), rng.uniform(radius, H * 0.6)], axis=1)  # [n, (x, y)]
    vel = rng.uniform(-c.max_speed, c.max_speed, (n, 2))
    colour = rng.uniform(0.35, 1.0, (n, 3)) * rng.permutation(np.eye(3) * 0.6 + 0.4)[rng.integers(0, 3, n)]
    background = rng.uniform(0.05, 0.25, 3)
    pillar = None
    if rng.random() < c.pillar_probability:
        pw = int(rng.integers(W // 10, W // 5))
        px = int(rng.integers(0, W - pw))
        pillar = (px, pw, rng.uniform(0.4, 0.7, 3))
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    out = np.empty((c.frames, H, W, 3), np.uint8)
    for f in range(c.frames):
        img = np.broadcast_to(background, (H, W, 3)).copy()
        for i in range(n):  # ball i is drawn over balls < i: a fixed depth order
            dist = np.hypot(xs - pos[i, 0], ys - pos[i, 1])
            alpha = np.clip(radius[i] + 0.5 - dist, 0.0, 1.0)[..., None]  # anti-aliased edge
            shade = 1.0 - 0.35 * np.clip(dist / radius[i], 0, 1)[..., None]  # a little depth cue
            img = img * (1 - alpha) + colour[i] * shade * alpha
        if pillar is not None:
            px, pw, pc = pillar
            img[:, px : px + pw] = pc
        out[f] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
        pos, vel = _step(pos, vel, radius, c)
    return out


def _step(pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, c: SceneConfig, substeps: int = 4):
    pos, vel = pos.copy(), vel.copy()
    dt = 1.0 / substeps
    for _ in range(substeps):
        vel[:, 1] += c.gravity * dt
        pos += vel * dt
        for axis, limit in ((0, c.width), (1, c.height)):
            low = pos[:, axis] < radius
            high = pos[:, axis] > limit - radius
            pos[low, axis] = 2 * radius[low] - pos[low, axis]
            pos[high, axis] = 2 * (limit - radius[high]) - pos[high, axis]
            vel[low | high, axis] *= -c.restitution
    return pos, vel


def write_dataset(
    out_dir: str | os.PathLike, seeds: range | list[int], config: SceneConfig | None = None
) -> list[Path]:
    """Write one H.264 video per seed as OUT/scene-SEED.mp4; returns the paths."""
    from vgpt.video import write_video

    c = config or SceneConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        paths.append(write_video(out / f"scene-{seed:07d}.mp4", render_video(seed, c), fps=c.fps))
    return paths
