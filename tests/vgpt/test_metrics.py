import numpy as np
import pytest

from vgpt.metrics import (
    Palette,
    constant_velocity,
    copy_last,
    psnr,
    relative_error,
    score_objects,
    ssim,
    summarise_objects,
)
from vgpt.synthetic import SHADE_DEPTH, SceneConfig, SceneObjects, render_video, scene_objects

SIZE = 64
BACKGROUND = np.array([0.1, 0.12, 0.15])
RED = np.array([0.9, 0.25, 0.2])


def _inside(centre, radius: float) -> np.ndarray:
    """[H, W]: pixel centres at least half a pixel inside the circle (the renderer's rim-free disc)."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return np.hypot(xs - centre[0], ys - centre[1]) <= radius - 0.5


def _frame(centre=None, radius: float = 6.0, colour=RED) -> np.ndarray:
    """A hand-made frame [H, W, 3]: a hard-edged disc shaded as the renderer shades a ball (its rim
    (1 - SHADE_DEPTH) as bright as its centre), on the background."""
    img = np.broadcast_to(BACKGROUND, (SIZE, SIZE, 3)).copy()
    if centre is not None:
        ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
        shade = 1 - SHADE_DEPTH * np.hypot(xs - centre[0], ys - centre[1]) / radius
        inside = _inside(centre, radius)
        img[inside] = shade[inside, None] * colour
    return img


def _scene(centres, radius: float = 6.0) -> SceneObjects:
    """The truth of one red ball at `centres` (one per frame), nothing in front of it."""
    visible = np.stack([_inside(c, radius) for c in centres])[:, None]  # [F, 1, H, W]
    return SceneObjects(
        centre=np.array(centres, float)[:, None],
        radius=np.array([radius]),
        colour=RED[None],
        background=BACKGROUND,
        pillar_colour=None,
        visible=visible,
        disc_area=visible.sum(axis=(2, 3)),
    )


def _blur(img: np.ndarray, k: int) -> np.ndarray:
    """A (2k + 1)^2 box blur, edges clamped."""
    padded = np.pad(img, ((k, k), (k, k), (0, 0)), mode="edge")
    return np.mean([padded[dy : dy + SIZE, dx : dx + SIZE] for dy in range(2 * k + 1) for dx in range(2 * k + 1)], 0)


def test_a_disc_where_the_ball_is_is_present_with_no_error():
    truth = _frame((30.0, 24.0))[None]
    scores = score_objects(truth, truth, _scene([(30.0, 24.0)]), 0)
    assert scores.scored[0, 0] and scores.present[0, 0]
    assert scores.centroid_error[0, 0] < 1e-9 and scores.colour_error[0, 0] < 1e-9


def test_a_blank_frame_shows_no_ball():
    truth = _frame((30.0, 24.0))[None]
    scores = score_objects(_frame()[None], truth, _scene([(30.0, 24.0)]), 0)
    assert scores.scored[0, 0] and not scores.present[0, 0] and np.isnan(scores.centroid_error[0, 0])
    summary = summarise_objects([scores])
    assert summary["presence"] == 0.0 and summary["presence_by_horizon"] == [0.0]
    assert summary["centroid_error_px"] is None and summary["centroid_error_by_horizon"] == [None]


def test_a_shifted_disc_is_present_and_its_shift_is_the_centroid_error():
    truth = _frame((30.0, 24.0))[None]
    shifted = _frame((33.0, 20.0))[None]  # (3, -4) px: 5 px away, less than the 6 px radius
    scores = score_objects(shifted, truth, _scene([(30.0, 24.0)]), 0)
    assert scores.present[0, 0]
    assert scores.centroid_error[0, 0] == pytest.approx(5.0, abs=1e-9)


def test_a_faded_or_blurred_ball_is_absent_although_mse_prefers_it():
    # The point of the metric: the mean of the possible futures (a smudge) beats a sharp, slightly
    # wrong guess on pixel MSE, but shows no ball.
    truth = _frame((30.0, 24.0))
    sharp_but_off = _frame((35.0, 24.0))
    faded = BACKGROUND + 0.5 * (truth - BACKGROUND)
    blurred = _blur(truth, 6)
    scene = _scene([(30.0, 24.0)])
    assert score_objects(sharp_but_off[None], truth[None], scene, 0).present[0, 0]
    for smudge in (faded, blurred):
        assert not score_objects(smudge[None], truth[None], scene, 0).present[0, 0]
        assert ((smudge - truth) ** 2).mean() < ((sharp_but_off - truth) ** 2).mean()


def test_a_ball_mostly_hidden_in_the_truth_is_not_scored():
    scene = _scene([(30.0, 24.0)])
    hidden = scene.visible.copy()
    hidden[0, 0, :, :31] = False  # keep less than half of the disc (x from 24.5 to 35.5 px)
    scene = SceneObjects(scene.centre, scene.radius, scene.colour, scene.background, None, hidden, scene.disc_area)
    scores = score_objects(_frame()[None], _frame((30.0, 24.0))[None], scene, 0)
    assert not scores.scored[0, 0] and not scores.present[0, 0]
    assert summarise_objects([scores])["presence"] is None


def test_scene_truth_matches_render_video():
    config = SceneConfig(frames=6, max_balls=3, pillar_probability=0.5)
    with_pillar = 0
    for seed in range(8):
        video, truth = render_video(seed, config) / 255.0, scene_objects(seed, config)
        n = len(truth.radius)
        assert truth.visible.shape == (6, n, 64, 64) and truth.centre.shape == (6, n, 2)
        assert truth.visible.sum(axis=1).max() <= 1, "a pixel shows one ball at most"
        if truth.pillar_colour is not None:
            with_pillar += 1
            pillar = np.all(np.abs(video - truth.pillar_colour) < 1 / 255, axis=-1).all(axis=0)  # [H, W]
            assert pillar.any() and not truth.visible[:, :, pillar].any(), "no ball is visible on the pillar"
        for i in range(n):
            # A visible pixel is the ball's colour, shaded between rim and centre (to uint8 rounding).
            pixels = video[truth.visible[:, i]]  # [P, 3]
            shade = (pixels @ truth.colour[i]) / (truth.colour[i] @ truth.colour[i])
            assert shade.min() >= 1 - SHADE_DEPTH - 0.01 and shade.max() <= 1.01
            assert np.abs(pixels - shade[:, None] * truth.colour[i]).max() < 1.5 / 255
            for f in range(6):  # an unhidden ball's visible centroid is its centre
                if truth.visible_area[f, i] == truth.disc_area[f, i]:
                    ys, xs = np.nonzero(truth.visible[f, i])
                    assert np.allclose([xs.mean() + 0.5, ys.mean() + 0.5], truth.centre[f, i], atol=0.25)
                    assert abs(truth.disc_area[f, i] / (np.pi * (truth.radius[i] - 0.5) ** 2) - 1) < 0.15
        scores = score_objects(video, video, truth, 0)
        assert scores.present[scores.scored].all() and np.nanmax(scores.centroid_error) < 1.0
    assert with_pillar, "the seeds include a scene with a pillar"


def test_copy_last_and_constant_velocity_use_the_observed_frames():
    # A ball moving 4 px right per frame, no gravity: constant velocity extrapolates it exactly.
    centres = [(10.0 + 4 * f, 30.0) for f in range(6)]
    frames = np.stack([_frame(c) for c in centres])
    scene = _scene(centres)
    observed, future = frames[:3], frames[3:]
    copied = copy_last(observed, 3)
    assert copied.shape == (3, SIZE, SIZE, 3) and np.array_equal(copied[2], observed[-1])
    moved = constant_velocity(observed, Palette.of(scene), 3)
    cv, last = score_objects(moved, future, scene, 3), score_objects(copied, future, scene, 3)
    assert cv.present.all() and np.nanmax(cv.centroid_error) < 0.5
    assert last.centroid_error[0, 0] == pytest.approx(4.0, abs=1e-9) and last.centroid_error[1, 0] > 6
    # The painted-out ball leaves the background; nothing else of the frame changes.
    assert np.allclose(moved[0][~_inside(centres[3], 7.0)], BACKGROUND)


def test_psnr_and_ssim_by_hand():
    a = np.zeros((2, 16, 16, 3))
    b = a + np.array([0.1, 0.0])[:, None, None, None]  # frame 0 off by 0.1 everywhere, frame 1 exact
    assert psnr(b, a) == pytest.approx([20.0, 100.0])
    # The one PSNR serves every convention: frames in [-1, 1] (peak to peak 2), uint8 (255), one figure.
    assert psnr(2 * b - 1, 2 * a - 1, peak_to_peak=2) == pytest.approx([20.0, 100.0])
    assert psnr(255 * b, 255 * a, peak_to_peak=255) == pytest.approx([20.0, 100.0])
    assert psnr(b, a, frame_axis=None) == pytest.approx(10 * np.log10(1 / (0.1**2 / 2)))
    assert psnr(np.moveaxis(b, 0, -1), np.moveaxis(a, 0, -1), frame_axis=-1) == pytest.approx([20.0, 100.0])
    assert relative_error(np.array([3.0, 4.0]) * 1.1, np.array([3.0, 4.0])) == pytest.approx(0.1)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0 and relative_error(np.ones(2), np.zeros(2)) == np.inf
    # Constant frames: only the luminance term is left, (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    c1 = 0.01**2
    x, y = np.full((1, 16, 16, 3), 0.2), np.full((1, 16, 16, 3), 0.6)
    assert ssim(x, y) == pytest.approx([(2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)])
    noisy = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3))
    assert ssim(noisy, noisy) == pytest.approx([1.0])
    assert ssim(noisy, noisy[:, ::-1]) < 0.2


def test_errors_name_the_bad_input():
    truth = _frame((30.0, 24.0))[None]
    with pytest.raises(ValueError, match="must agree in size"):
        score_objects(truth[:, :32], truth[:, :32], _scene([(30.0, 24.0)]), 0)
    with pytest.raises(ValueError, match=r"frames 1\.\.1 asked of a scene of 1 frames"):
        score_objects(truth, truth, _scene([(30.0, 24.0)]), 1)
    with pytest.raises(ValueError, match="SSIM needs frames of at least 11x11 px"):
        ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


def test_stray_pixels_count_what_the_prediction_shows_away_from_every_ball():
    truth = _frame((30.0, 24.0))
    scene = _scene([(30.0, 24.0)])
    clean = score_objects(truth[None], truth[None], scene, 0)
    assert clean.stray[0] == 0 and clean.ball_area[0] == scene.visible[0].sum()
    # a ghost of the ball far from it (a disc of radius 4 px at (10, 50)) and a smear beside it: presence
    # still counts the ball, the stray pixels count the ghost and what of the smear lies off the ball
    ghost = truth.copy()
    ghost[_inside((10.0, 50.0), 4.0)] = RED
    smear = ghost.copy()
    smear[20:28, 38:46] = 0.5 * RED + 0.5 * np.array([0.1, 0.9, 0.1])  # a blend the scene does not have
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    off_ball = np.hypot(xs - 30.0, ys - 24.0) > 6.0 + 2.0
    ghost_px = int((_inside((10.0, 50.0), 4.0) & off_ball).sum())
    smear_px = ghost_px + int(off_ball[20:28, 38:46].sum())
    for frame, expected in ((ghost, ghost_px), (smear, smear_px)):
        scores = score_objects(frame[None], truth[None], scene, 0)
        assert scores.present[0, 0] and scores.stray[0] == expected > 0
    summary = summarise_objects([score_objects(smear[None], truth[None], scene, 0), clean])
    assert summary["stray_by_horizon"] == [pytest.approx(smear_px / (2 * scene.visible[0].sum()))]
    # a background tinted beyond the flat tolerance is stray everywhere off the ball
    tinted = truth + np.where(truth == BACKGROUND, 0.15, 0.0)
    assert score_objects(tinted[None], truth[None], scene, 0).stray[0] == off_ball.sum()
