"""Object-level scores of predicted frames of synthetic scenes, and image scores by horizon.

Pixel MSE rewards a prediction whose balls fade into a blur (the mean of the possible futures is
closer to every future than any one sharp guess). These scores do not: a ball counts as *present*
only where the prediction shows it in its own colour, and only then is its position (centroid error)
and colour (colour error) measured. The ground truth is `vgpt.synthetic.scene_objects`.

Frames here are float RGB [F, H, W, 3] in 0..1; positions are (x, y) px with pixel (0, 0) spanning
0..1, as in `vgpt.synthetic`. Two baselines need only the observed frames: `copy_last` and
`constant_velocity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vgpt.synthetic import SHADE_DEPTH, SceneObjects

# A ball is scored in a frame where the truth shows at least half its disc and at least 16 px of
# it: the smallest balls (4 px radius) have about 38 px inside the rim, and a sliver's centroid and
# colour say little. Elsewhere (mostly behind the pillar or another ball) it is not scored at all.
SCORED_FRACTION = 0.5
MIN_SCORED_PX = 16
# Present: the prediction shows, near the true position, at least 30% of the ball's true visible
# area in the ball's colour. The light codec alone (truth encoded and decoded) keeps a median 87%
# of a ball's pixels within the colour tolerance below, and 95% of balls pass at 30%.
PRESENT_FRACTION = 0.3
# "Near": within two radii of the true centre, so that a ball off by up to about a radius is still
# found and its error measured, while one much further off (or a different ball) is not.
SEARCH_RADII = 2.0
# A pixel shows ball i's colour when it lies within BLEND_TOLERANCE of the ball-to-background
# contrast from the ball's colours (its shading segment), and nearer them than to any other colour
# of the scene. A quarter of the contrast: a pixel blended more than about a quarter of the way to
# the background is no longer the ball's colour, so a ball faded to 50% is absent (measured: 3% of
# balls pass) while the codec round trip passes 95%. Never tighter than 0.04 (RGB distance in
# 0..1), the codec's median round-trip error, or dark low-contrast balls could never be found.
BLEND_TOLERANCE = 0.25
MIN_TOLERANCE = 0.04
# The background and pillar are flat colours; this tolerance decides which observed pixels the
# constant-velocity baseline takes for them, and which predicted pixels show them (stray pixels).
FLAT_TOLERANCE = 0.1
# Stray: a predicted pixel that shows neither the background nor the pillar, farther than a ball's radius
# and this margin from every ball's true centre (hidden balls included): a smear, a ghost or a tint that
# presence cannot see, since a blob spread over two balls' places counts for both. Two pixels: the
# codec's blur of a rim.
STRAY_MARGIN_PX = 2.0


@dataclass(frozen=True)
class Palette:
    """The colours of one scene. They never change over a clip and the observed frames show them,
    so a baseline may know them (positions and sizes it must find in the observed pixels)."""

    balls: np.ndarray  # [n, 3] RGB 0..1 at each ball's centre; its rim is (1 - SHADE_DEPTH) as bright
    background: np.ndarray  # [3]
    pillar: np.ndarray | None  # [3], None without a pillar

    @classmethod
    def of(cls, scene: SceneObjects) -> Palette:
        return cls(scene.colour, scene.background, scene.pillar_colour)

    @property
    def tolerance(self) -> np.ndarray:
        """[n] RGB distance within which a pixel may show ball i's colour."""
        contrast = _segment_distance(self.background[None], self.balls)[0]  # [n]
        return np.maximum(BLEND_TOLERANCE * contrast, MIN_TOLERANCE)

    def distances(self, frame: np.ndarray) -> np.ndarray:
        """[..., 3] -> [..., n + 2]: RGB distance to each ball's colours, the background and the pillar
        (infinite without one)."""
        background = np.linalg.norm(frame - self.background, axis=-1)
        no_pillar = np.full(frame.shape[:-1], np.inf)
        pillar = no_pillar if self.pillar is None else np.linalg.norm(frame - self.pillar, axis=-1)
        return np.concatenate([_segment_distance(frame, self.balls), background[..., None], pillar[..., None]], axis=-1)

    def labels(self, frame: np.ndarray) -> np.ndarray:
        """[..., 3] -> int [...]: i where the pixel shows ball i's colour, n for the background, n + 1 for
        the pillar, -1 for anything else (a blend, a smudge, a colour the scene does not have)."""
        d = self.distances(frame)
        nearest = d.argmin(axis=-1)
        tolerance = np.concatenate([self.tolerance, [FLAT_TOLERANCE, FLAT_TOLERANCE]])
        within = np.take_along_axis(d, nearest[..., None], axis=-1)[..., 0] <= tolerance[nearest]
        return np.where(within, nearest, -1)


def _segment_distance(points: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """[..., 3], [n, 3] -> [..., n]: distance from each point to the colours s * colour,
    s in [1 - SHADE_DEPTH, 1], that a ball shows between its rim and its centre."""
    low = colours * (1 - SHADE_DEPTH)  # [n, 3]
    span = colours - low
    p = points[..., None, :] - low  # [..., n, 3]
    s = np.clip((p * span).sum(-1) / np.maximum((span * span).sum(-1), 1e-12), 0, 1)  # [..., n]
    return np.linalg.norm(p - s[..., None] * span, axis=-1)


@dataclass(frozen=True)
class ObjectScores:
    """Per frame and ball of one clip; the error arrays are NaN where the ball is not present."""

    scored: np.ndarray  # [F, n] bool: visible enough in the truth to be scored
    present: np.ndarray  # [F, n] bool: scored and shown by the prediction
    centroid_error: np.ndarray  # [F, n] px
    colour_error: np.ndarray  # [F, n] RGB distance in 0..1
    stray: np.ndarray  # [F] int: stray pixels of each predicted frame (STRAY_MARGIN_PX)
    ball_area: np.ndarray  # [F] int: pixels the truth shows of its balls


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres, as the renderer samples them
    return xs, ys


def score_objects(predicted: np.ndarray, truth: np.ndarray, scene: SceneObjects, first: int) -> ObjectScores:
    """Score predicted frames [F, H, W, 3] against the true frames [F, H, W, 3] of `scene`, whose
    frame `first` is predicted[0]."""
    F, H, W = predicted.shape[:3]
    if truth.shape != predicted.shape or scene.visible.shape[2:] != (H, W):
        raise ValueError(f"predicted {predicted.shape}, truth {truth.shape} and the scene's frames "
                         f"{scene.visible.shape[2:]} must agree in size")  # fmt: skip
    if first + F > len(scene.centre):
        raise ValueError(f"frames {first}..{first + F - 1} asked of a scene of {len(scene.centre)} frames")
    palette = Palette.of(scene)
    n = len(scene.radius)
    xs, ys = _pixel_grid(H, W)
    scored = np.zeros((F, n), bool)
    present = np.zeros((F, n), bool)
    centroid_error = np.full((F, n), np.nan)
    colour_error = np.full((F, n), np.nan)
    stray = np.zeros(F, int)
    ball_area = scene.visible[first : first + F].sum(axis=(1, 2, 3))  # [F]
    for f in range(F):
        labels = palette.labels(predicted[f])  # [H, W]
        centres, radii = scene.centre[first + f], scene.radius
        off_balls = np.all(np.hypot(xs[..., None] - centres[:, 0], ys[..., None] - centres[:, 1])
                           > radii + STRAY_MARGIN_PX, axis=-1)  # fmt: skip
        stray[f] = int((off_balls & (labels != n) & (labels != n + 1)).sum())
        for i in range(n):
            visible = scene.visible[first + f, i]
            area = int(visible.sum())
            scored[f, i] = area >= max(SCORED_FRACTION * scene.disc_area[first + f, i], MIN_SCORED_PX)
            if not scored[f, i]:
                continue
            cx, cy = scene.centre[first + f, i]
            near = np.hypot(xs - cx, ys - cy) <= SEARCH_RADII * scene.radius[i]
            shown = near & (labels == i)
            present[f, i] = shown.sum() >= PRESENT_FRACTION * area
            if present[f, i]:
                true_centroid = np.array([xs[visible].mean(), ys[visible].mean()])
                centroid = np.array([xs[shown].mean(), ys[shown].mean()])
                centroid_error[f, i] = float(np.linalg.norm(centroid - true_centroid))
                colour_error[f, i] = float(np.linalg.norm(predicted[f][shown].mean(0) - truth[f][visible].mean(0)))
    return ObjectScores(scored, present, centroid_error, colour_error, stray, ball_area)


def _mean_or_none(x: np.ndarray) -> float | None:
    """The mean of the finite values; None (JSON null) where there are none."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def summarise_objects(scores: list[ObjectScores]) -> dict:
    """Clips' scores (the same number of frames each) -> overall and by-horizon figures; frame j of
    every clip is horizon j + 1."""
    scored = np.concatenate([s.scored for s in scores], axis=1)  # [F, balls of all clips]
    present = np.concatenate([s.present for s in scores], axis=1)
    centroid = np.concatenate([s.centroid_error for s in scores], axis=1)
    colour = np.concatenate([s.colour_error for s in scores], axis=1)
    stray = np.stack([s.stray for s in scores], axis=1)  # [F, clips]
    area = np.stack([s.ball_area for s in scores], axis=1)

    def presence(p: np.ndarray, s: np.ndarray) -> float | None:
        return float(p.sum() / s.sum()) if s.sum() else None

    def per_ball_pixel(x: np.ndarray, a: np.ndarray) -> float | None:
        return float(x.sum() / a.sum()) if a.sum() else None

    return {
        "presence": presence(present, scored),
        "presence_by_horizon": [presence(present[j], scored[j]) for j in range(len(scored))],
        "centroid_error_px": _mean_or_none(centroid),
        "centroid_error_by_horizon": [_mean_or_none(c) for c in centroid],
        "colour_error": _mean_or_none(colour),
        "colour_error_by_horizon": [_mean_or_none(c) for c in colour],
        # stray pixels per pixel of the true balls: 0 for a clean prediction, ~1 where it smears as much
        # as the balls cover
        "stray": per_ball_pixel(stray, area),
        "stray_by_horizon": [per_ball_pixel(stray[j], area[j]) for j in range(len(stray))],
        "scored": int(scored.sum()),
        "scored_by_horizon": scored.sum(axis=1).tolist(),
    }


# A perfect match scores this instead of infinity: the mean squared error is floored at 1e-10 of the
# range squared, so figures stay finite in means, JSON and plots.
PSNR_CAP_DB = 100.0


def psnr(predicted, truth, peak_to_peak: float = 1.0, frame_axis: int | None = 0):
    """The one PSNR of vgpt, in dB: `predicted` against `truth`, whose values span `peak_to_peak` (1 for
    frames in 0..1, 2 in [-1, 1], 255 for uint8). Per item along `frame_axis` (default: the first, [F, ...]
    -> [F]) or, with None, one figure over every value. A perfect match scores PSNR_CAP_DB."""
    diff = (np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)) / peak_to_peak
    axes = None if frame_axis is None else tuple(a for a in range(diff.ndim) if a != frame_axis % diff.ndim)
    mse = np.mean(diff**2, axis=axes)
    return 10 * np.log10(1.0 / np.maximum(mse, 10 ** (-PSNR_CAP_DB / 10)))


def relative_error(candidate, reference) -> float:
    """The one relative error of vgpt: ||candidate - reference|| / ||reference||, Frobenius norms over
    every value (0 for equal arrays; a zero reference gives inf unless the candidate is zero too)."""
    diff = np.linalg.norm(np.asarray(candidate, np.float64) - np.asarray(reference, np.float64))
    norm = np.linalg.norm(np.asarray(reference, np.float64))
    return float(diff / norm) if norm > 0 else (0.0 if diff == 0 else float("inf"))


def _gaussian_filter(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [F, H, W, C] over H and W."""
    x = sliding_window_view(x, len(window), axis=1) @ window  # [F, H - k + 1, W, C]
    return sliding_window_view(x, len(window), axis=2) @ window  # [F, H - k + 1, W - k + 1, C]


def ssim(predicted: np.ndarray, truth: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """[F, H, W, 3] in 0..1 -> [F] mean SSIM over the pixels and channels.

    Wang et al. 2004 (eq. 13 with the paper's constants K1 = 0.01, K2 = 0.03 for a data range of 1):
    local means, variances and covariance under an 11-tap Gaussian window of sigma 1.5, over the
    positions where the window fits in the frame (no padding)."""
    k = 2 * radius + 1
    if predicted.shape[1] < k or predicted.shape[2] < k:
        raise ValueError(f"SSIM needs frames of at least {k}x{k} px, got {predicted.shape[1:3]}")
    offsets = np.arange(k) - radius
    window = np.exp(-(offsets**2) / (2 * sigma**2))
    window /= window.sum()
    a, b = predicted.astype(np.float64), truth.astype(np.float64)
    mu_a, mu_b = _gaussian_filter(a, window), _gaussian_filter(b, window)
    var_a = _gaussian_filter(a * a, window) - mu_a**2
    var_b = _gaussian_filter(b * b, window) - mu_b**2
    cov = _gaussian_filter(a * b, window) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    local = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return local.mean(axis=(1, 2, 3))


def copy_last(observed: np.ndarray, frames: int) -> np.ndarray:
    """The last observed frame, repeated: [M, H, W, 3] -> [frames, H, W, 3]."""
    return np.repeat(observed[-1:], frames, axis=0)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """A [H, W] mask grown by one pixel (8-neighbourhood)."""
    padded = np.pad(mask, 1)
    H, W = mask.shape
    return np.any([padded[dy : dy + H, dx : dx + W] for dy in range(3) for dx in range(3)], axis=0)


def constant_velocity(observed: np.ndarray, palette: Palette, frames: int) -> np.ndarray:
    """Extrapolate each ball from the last two observed frames: [M, H, W, 3] -> [frames, H, W, 3].

    Only observed pixels: each ball is found in the last two frames by its colour (`Palette.labels`);
    its centroid moves on by the displacement between them every frame (no gravity, no bounces), and
    it is drawn as an anti-aliased flat disc of its mean observed colour and of the radius of its
    largest observed area, in index (depth) order, over the last frame with the balls painted out
    in the observed background colour. The pillar's observed pixels stay on top. A ball not seen in
    the last frame is left out; one seen only there stands still."""
    last = observed[-1]
    before = observed[-2] if len(observed) > 1 else last
    labels, labels_before = palette.labels(last), palette.labels(before)
    n = len(palette.balls)
    canvas = last.copy()
    background = last[labels == n]
    canvas[_dilate((labels >= 0) & (labels < n))] = background.mean(0) if len(background) else palette.background
    pillar = labels == n + 1
    H, W = last.shape[:2]
    xs, ys = _pixel_grid(H, W)
    balls = []
    for i in range(n):
        now, then = labels == i, labels_before == i
        if not now.any():
            continue
        centre = np.array([xs[now].mean(), ys[now].mean()])
        start = np.array([xs[then].mean(), ys[then].mean()]) if then.any() else centre
        radius = np.sqrt(max(now.sum(), then.sum()) / np.pi)
        balls.append((centre, centre - start, radius, last[now].mean(0)))
    out = np.empty((frames, *last.shape), last.dtype)
    for k in range(frames):
        img = canvas.copy()
        for centre, velocity, radius, colour in balls:
            x, y = centre + (k + 1) * velocity
            alpha = np.clip(radius + 0.5 - np.hypot(xs - x, ys - y), 0.0, 1.0)[..., None]
            img = img * (1 - alpha) + colour * alpha
        img[pillar] = last[pillar]
        out[k] = img
    return out
