"""Rotation time conditioning (gpdit-reference.md section 3): the angle of a noise level and the rotation."""

import math

import pytest
import torch

from vgpt.time_rotation import rotate_features, rotation_angle, token_rotation


def test_angle_is_zero_for_clean_and_a_right_angle_for_noise():
    # Our t counts towards the clean sample (t = 1 clean): theta = atan2(1 - t, t).
    angles = rotation_angle(torch.tensor([1.0, 0.75, 0.5, 0.0]))
    assert angles.tolist() == pytest.approx([0.0, math.atan2(0.25, 0.75), math.pi / 4, math.pi / 2], abs=1e-7)
    assert angles[0].item() == 0.0


def test_rotation_at_angle_zero_is_the_identity_bit_for_bit():
    h = torch.randn(2, 5, 8) * 100
    cos, sin = token_rotation(torch.zeros(2, 1), block=5)
    assert torch.equal(rotate_features(h, cos, sin), h)


def test_rotation_pairs_the_two_halves_of_the_channels():
    # D = 4: the pairs are (0, 2) and (1, 3); [a, b] -> [cos a - sin b, sin a + cos b].
    h = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    theta = 0.3
    cos, sin = token_rotation(torch.tensor([[theta]]), block=1)
    expected = [
        math.cos(theta) * 1 - math.sin(theta) * 3,
        math.cos(theta) * 2 - math.sin(theta) * 4,
        math.sin(theta) * 1 + math.cos(theta) * 3,
        math.sin(theta) * 2 + math.cos(theta) * 4,
    ]
    assert rotate_features(h, cos, sin).flatten().tolist() == pytest.approx(expected, rel=1e-6)
    # A rotation keeps the norm of each token's features.
    assert rotate_features(h, cos, sin).norm().item() == pytest.approx(h.norm().item(), rel=1e-6)


def test_each_frames_angle_covers_its_block():
    cos, sin = token_rotation(torch.tensor([[0.0, 1.0]]), block=3)  # [B, F] -> [B, F * block, 1]
    assert cos.shape == (1, 6, 1)
    assert cos[0, :3, 0].tolist() == [1.0, 1.0, 1.0] and sin[0, 3:, 0].tolist() == pytest.approx([math.sin(1.0)] * 3)
