import math

import pytest
import torch

from vgpt.config import get_preset
from vgpt.rope import apply_rotary, inverse_frequencies, rope_tables, select_factor_set


def test_inverse_frequencies_formula():
    c = get_preset("tiny")  # head_dim 8: four frequencies
    for factor_set, factors in (("long", c.rope_long_factor), ("short", c.rope_short_factor)):
        expected = [1 / (factors[i] * 10000 ** (2 * i / 8)) for i in range(4)]
        assert inverse_frequencies(c, factor_set).tolist() == pytest.approx(expected, rel=1e-6)


def test_factor_set_policies():
    released = get_preset("videogpt-3.8b")
    # The released inference uses the long factors at every length, however short.
    assert select_factor_set(released, 0) == "long"
    stock = released.replace(rope_factor_policy="length")
    assert select_factor_set(stock, 4095) == "short"
    assert select_factor_set(stock, 4096) == "long"  # largest position id >= 4096


def test_tables_carry_the_attention_factor_and_repeat_halves():
    c = get_preset("tiny")
    cos, sin = rope_tables(c, torch.tensor([0, 5]), "long")
    scale = c.rope_attention_factor
    assert cos[0].tolist() == pytest.approx([scale] * 8)
    assert sin[0].tolist() == pytest.approx([0.0] * 8)
    inv = inverse_frequencies(c, "long")
    assert cos[1, :4].tolist() == pytest.approx((torch.cos(5 * inv) * scale).tolist(), rel=1e-6)
    assert torch.equal(cos[:, :4], cos[:, 4:]) and torch.equal(sin[:, :4], sin[:, 4:])


def test_rotate_half_convention():
    # head_dim 4: pairs are (0, 2) and (1, 3), not interleaved (0, 1), (2, 3).
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4)
    a, b = 0.3, 0.7
    cos = torch.tensor([[math.cos(a), math.cos(b), math.cos(a), math.cos(b)]])
    sin = torch.tensor([[math.sin(a), math.sin(b), math.sin(a), math.sin(b)]])
    out = apply_rotary(x, cos, sin).flatten().tolist()
    expected = [
        1 * math.cos(a) - 3 * math.sin(a),
        2 * math.cos(b) - 4 * math.sin(b),
        3 * math.cos(a) + 1 * math.sin(a),
        4 * math.cos(b) + 2 * math.sin(b),
    ]
    assert out == pytest.approx(expected, rel=1e-6)
