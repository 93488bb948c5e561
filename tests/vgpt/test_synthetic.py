import numpy as np
import pytest

from vgpt.synthetic import SceneConfig, render_video


def test_scenes_are_deterministic_by_seed_and_move():
    a, b, c = render_video(11), render_video(11), render_video(12)
    assert a.shape == (32, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a[1:].astype(int) - a[:-1]).mean() > 0.5, "the balls move"


def test_gravity_pulls_balls_down():
    # Averaged over scenes, the brightness-weighted centre of the balls ends lower than it starts.
    drops = []
    for seed in range(20):
        video = render_video(seed, SceneConfig(frames=12, pillar_probability=0.0)).astype(float)
        diff = np.abs(video - np.median(video.reshape(-1, 3), axis=0)).sum(-1)  # [F, H, W] ball mass
        rows = np.arange(64)[None, :, None]
        centre = (diff * rows).sum((1, 2)) / diff.sum((1, 2))
        drops.append(centre[-1] - centre[0])
    assert np.mean(drops) > 3


def test_scene_config_errors():
    with pytest.raises(ValueError, match="use at least 16x16"):
        SceneConfig(height=8)
    with pytest.raises(ValueError, match="min_balls <= max_balls"):
        SceneConfig(min_balls=3, max_balls=2)
