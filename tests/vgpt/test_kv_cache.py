"""The KV caches: two-part attention equals attention over the concatenated keys and values."""

import pytest
import torch
import torch.nn.functional as F

from vgpt.kv_cache import GraphCache, two_part_attention
from vgpt.masks import attention_bias


@pytest.mark.parametrize("past_masked", [False, True])
def test_two_part_attention_equals_attention_over_the_concatenation(past_masked):
    gen = torch.Generator().manual_seed(0)
    B, nh, N, P, hd = 1, 3, 5, 7, 8
    q, k, v = (torch.randn(B, nh, N, hd, generator=gen) for _ in range(3))
    past_k, past_v = (torch.randn(B, nh, P, hd, generator=gen) * 3 for _ in range(2))
    mask = torch.rand(N, P + N, generator=gen) > 0.3
    mask[:, P:] |= torch.eye(N, dtype=torch.bool)  # every query sees itself
    if not past_masked:
        mask[:, :P] = True
    bias = attention_bias(mask, torch.float32)
    want = F.scaled_dot_product_attention(q, torch.cat([past_k, k], 2), torch.cat([past_v, v], 2), attn_mask=bias)
    got = two_part_attention(q, past_k, past_v, k, v, bias, past_masked)
    # Same fp32 arithmetic in another order (one shared maximum and denominator): round-off only.
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_graph_cache_reads_each_layer_from_the_stacked_tensor():
    kv = torch.arange(2 * 2 * 1 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 2, 1, 1, 3, 2)
    cache = GraphCache(kv)
    k, v = cache.past(1)
    assert torch.equal(k, kv[1, 0]) and torch.equal(v, kv[1, 1]) and cache.length == 3
