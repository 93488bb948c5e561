import numpy as np
import pytest
import torch

from vgpt.frames import FrameSizeError, fit_frames, preprocess_frames, to_uint8


def test_released_preprocessing_limits_and_crops():
    frames = np.random.default_rng(0).integers(0, 256, (2, 500, 700, 3), dtype=np.uint8)
    out = preprocess_frames(frames)
    # 700 -> 320 (scale 0.457): 500 -> 229, cropped to a multiple of 16: 224.
    assert out.shape == (2, 3, 224, 320)
    assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1
    small = np.zeros((1, 100, 50, 3), np.uint8)  # never up-scaled: 96 x 48
    assert preprocess_frames(small).shape == (1, 3, 96, 48)


def test_fit_frames_gives_the_exact_size():
    frames = np.full((3, 90, 160, 3), 255, np.uint8)
    out = fit_frames(frames, 64, 64)
    assert out.shape == (3, 3, 64, 64)
    assert torch.allclose(out, torch.ones_like(out))


def test_uint8_round_trip():
    frames = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(to_uint8(fit_frames(frames, 16, 16)), frames)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((16, 16, 3), np.uint8), r"frames must be \[F, H, W, 3\] RGB, got shape \(16, 16, 3\)"),
        (np.zeros((1, 16, 16, 3), np.float32), "frames must be uint8, got torch.float32"),
        (np.zeros((1, 10, 400, 3), np.uint8), "frames of 10x400 px are too small"),
    ],
)
def test_bad_frames(frames, message):
    with pytest.raises(FrameSizeError, match=message):
        preprocess_frames(frames)
