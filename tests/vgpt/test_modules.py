import math

import pytest
import torch

from vgpt.config import get_preset
from vgpt.modules import (
    FinalLayer,
    RMSNorm,
    crop_pos_embed,
    sincos_2d_table,
    timestep_sinusoid,
    unpatchify,
)


def test_rmsnorm_normalises_in_fp32():
    norm = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 8))
    x = (torch.randn(3, 8) * 100).to(torch.bfloat16)
    x32 = x.float()
    expected = norm.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(torch.bfloat16)
    assert torch.equal(norm(x), expected)


def test_sincos_table_spelled_out():
    # dim 8 -> halves of 4 -> frequencies [1, 1/100]; grid 3, base 3: coordinates = indices.
    table = sincos_2d_table(8, grid=3, base_size=3)
    assert table.shape == (1, 9, 8)
    row, col = 1, 2
    s, c = math.sin, math.cos
    expected = [s(col), s(col / 100), c(col), c(col / 100), s(row), s(row / 100), c(row), c(row / 100)]
    assert table[0, row * 3 + col].tolist() == pytest.approx(expected, rel=1e-6)


def test_sincos_table_released_coordinates():
    # 192-grid with base 64: coordinate = index * 64 / 192, so column 3 sits at coordinate 1.0.
    table = sincos_2d_table(3072, grid=192, base_size=64)
    assert table.shape == (1, 192 * 192, 3072)
    assert table[0, 3, 0].item() == pytest.approx(math.sin(1.0), rel=1e-6)
    assert table[0, 3 * 192, 1536].item() == pytest.approx(math.sin(1.0), rel=1e-6)  # row 3, column 0


def test_pos_embed_crop_is_centred_row_major():
    grid = 6
    table = torch.arange(grid * grid, dtype=torch.float32).view(1, grid * grid, 1)
    crop = crop_pos_embed(table, grid, gh=2, gw=4)  # top = 2, left = 1
    assert crop.flatten().tolist() == [13, 14, 15, 16, 19, 20, 21, 22]


def test_timestep_sinusoid_is_cos_then_sin_of_raw_t():
    emb = timestep_sinusoid(torch.tensor([0.5]), 4)  # frequencies exp(-ln(1e4) * [0, 1] / 2) = [1, 0.01]
    expected = [math.cos(0.5), math.cos(0.005), math.sin(0.5), math.sin(0.005)]
    assert emb[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_unpatchify_token_layout():
    # 2 x 3 patch grid, p = 2, C = 1: token (r, c) holds its 2 x 2 patch row-major.
    gh, gw, p = 2, 3, 2
    tokens = torch.arange(gh * gw * p * p, dtype=torch.float32).view(gh * gw, p * p)
    img = unpatchify(tokens, gh, gw, p, 1)[0]  # [h, w]
    assert img.shape == (4, 6)
    assert img[0].tolist() == [0, 1, 4, 5, 8, 9]  # top rows of tokens 0, 1, 2
    assert img[3].tolist() == [14, 15, 18, 19, 22, 23]  # bottom rows of tokens 3, 4, 5
    # Channels last within a token: (p, p, C).
    two = torch.arange(1 * 1 * 2 * 2 * 2, dtype=torch.float32).view(1, 8)
    assert unpatchify(two, 1, 1, 2, 2).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_final_layer_shift_first():
    c = get_preset("tiny")
    layer = FinalLayer(c)
    d = c.hidden_size
    with torch.no_grad():
        layer.adaLN_modulation[1].weight.zero_()
        layer.adaLN_modulation[1].bias.copy_(torch.cat([torch.full((d,), 2.0), torch.full((d,), 0.5)]))
        layer.linear.weight.copy_(torch.eye(c.patch_dim, d))
        layer.linear.bias.zero_()
    x = torch.randn(1, 3, d)
    normed = torch.nn.functional.layer_norm(x, (d,), eps=1e-6)
    out = layer(x, torch.zeros(1, d))
    assert torch.allclose(out, (normed * 1.5 + 2.0)[..., : c.patch_dim], atol=1e-6)
