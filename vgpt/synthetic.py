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


# A ball's rim is drawn (1 - SHADE_DEPTH) as bright as its centre: a little depth cue. Ground truth
# users (the object metrics) need it to know which colours a ball shows.
SHADE_DEPTH = 0.35


@dataclass(frozen=True)
class _Scene:
    """The random draws of one scene, in the order render_video has always made them."""

    radius: np.ndarray  # [n] px
    pos: np.ndarray  # [n, (x, y)] px at frame 0
    vel: np.ndarray  # [n, (x, y)] px per frame at frame 0
    colour: np.ndarray  # [n, 3] RGB in 0..1
    background: np.ndarray  # [3]
    pillar: tuple[int, int, np.ndarray] | None  # (first column, width, colour [3])


def _draw_scene(seed: int, c: SceneConfig) -> _Scene:
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
    return _Scene(radius, pos, vel, colour, background, pillar)


def _centres(scene: _Scene, c: SceneConfig) -> np.ndarray:
    """Every ball's centre in every frame: [F, n, (x, y)] px."""
    pos, vel = scene.pos, scene.vel
    out = np.empty((c.frames, *pos.shape))
    for f in range(c.frames):
        out[f] = pos
        pos, vel = _step(pos, vel, scene.radius, c)
    return out


def _pixel_centres(c: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : c.height, 0 : c.width].astype(np.float32) + 0.5
    return xs, ys


def _disc(xs: np.ndarray, ys: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, shade) [H, W] of one ball: coverage is 1 inside, anti-aliased over the rim's pixel."""
    dist = np.hypot(xs - centre[0], ys - centre[1])
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    shade = 1.0 - SHADE_DEPTH * np.clip(dist / radius, 0, 1)
    return alpha, shade


def render_video(seed: int, config: SceneConfig | None = None) -> np.ndarray:
    """The scene of `seed` as uint8 RGB [F, H, W, 3]."""
    c = config or SceneConfig()
    scene = _draw_scene(seed, c)
    centres = _centres(scene, c)
    xs, ys = _pixel_centres(c)
    out = np.empty((c.frames, c.height, c.width, 3), np.uint8)
    for f in range(c.frames):
        img = np.broadcast_to(scene.background, (c.height, c.width, 3)).copy()
        for i in range(len(scene.radius)):  # ball i is drawn over balls < i: a fixed depth order
            alpha, shade = _disc(xs, ys, centres[f, i], scene.radius[i])
            img = img * (1 - alpha[..., None]) + scene.colour[i] * shade[..., None] * alpha[..., None]
        if scene.pillar is not None:
            px, pw, pc = scene.pillar
            img[:, px : px + pw] = pc
        out[f] = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class SceneObjects:
    """The ground truth of one scene as `render_video` draws it (same seed, same config).

    A ball is *visible* at a pixel that shows it alone: inside its disc (not on the anti-aliased rim),
    not covered by a later ball (balls are drawn in index order) nor by the pillar (drawn over all
    balls). There the pixel is `colour * shade` with shade in [1 - SHADE_DEPTH, 1] (1 at the centre).
    """

    centre: np.ndarray  # [F, n, (x, y)] px, pixel (0, 0) spans 0..1
    radius: np.ndarray  # [n] px
    colour: np.ndarray  # [n, 3] RGB in 0..1, at the ball's centre
    background: np.ndarray  # [3] RGB in 0..1
    pillar_colour: np.ndarray | None  # [3] RGB in 0..1, None without a pillar
    visible: np.ndarray  # [F, n, H, W] bool
    disc_area: np.ndarray  # [F, n] px inside the disc, whether covered or not

    @property
    def visible_area(self) -> np.ndarray:
        """[F, n] px."""
        return self.visible.sum(axis=(2, 3))


def scene_objects(seed: int, config: SceneConfig | None = None) -> SceneObjects:
    """The balls of `render_video(seed, config)`, frame by frame, from the same simulation."""
    c = config or SceneConfig()
    scene = _draw_scene(seed, c)
    centres = _centres(scene, c)
    xs, ys = _pixel_centres(c)
    n = len(scene.radius)
    pillar = np.zeros((c.height, c.width), bool)
    if scene.pillar is not None:
        pillar[:, scene.pillar[0] : scene.pillar[0] + scene.pillar[1]] = True
    visible = np.zeros((c.frames, n, c.height, c.width), bool)
    disc_area = np.zeros((c.frames, n), np.int64)
    for f in range(c.frames):
        alpha = np.stack([_disc(xs, ys, centres[f, i], scene.radius[i])[0] for i in range(n)])  # [n, H, W]
        disc_area[f] = (alpha == 1.0).sum(axis=(1, 2))
        for i in range(n):
            visible[f, i] = (alpha[i] == 1.0) & ~(alpha[i + 1 :] > 0.0).any(axis=0) & ~pillar
    pillar_colour = None if scene.pillar is None else scene.pillar[2]
    return SceneObjects(centres, scene.radius, scene.colour, scene.background, pillar_colour, visible, disc_area)


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
