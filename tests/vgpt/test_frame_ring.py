"""The exact rolling window (vgpt.frame_ring): after any number of shifts it equals a fresh window."""

import pytest
import torch

from tests.conftest import random_model
from vgpt.config import ConfigError, get_preset
from vgpt.frame_ring import FrameRing
from vgpt.kv_cache import GraphCache
from vgpt.predictors import inference_calls


def _fresh(model, frames, calls):
    """The window as the exact KV cache computes it: the frames through prefill together, [layers, 2, ...]."""
    cache = GraphCache.empty(model.config, frames.shape[0], torch.float32)
    model(calls.prefill, clean=frames, cache=cache, write_cache=True)
    return cache.stacked()


def _relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@torch.no_grad()
def test_rolling_after_1000_single_frame_shifts_equals_a_fresh_window():
    model = random_model(get_preset("gpdit-tiny"))
    W, G, tokens = 4, 2, 4  # 4 x 4 latents: 2 x 2 patches, block 6
    calls = inference_calls(model.config, W, G, tokens)
    stream = torch.randn(1, W + 1000, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    ring = FrameRing(model.config, 1, W, tokens, calls.factor_set, torch.float32, "cpu")
    ring.push(model, stream[:, :W])
    for i in range(W, W + 1000):
        ring.push(model, stream[:, i : i + 1])
    assert ring.count == W + 1000 and ring.window_index().tolist() == [0, 1, 2, 3]  # 1004 = 0 mod 4
    ring.push(model, stream[:, :1])  # one more: the oldest slot now holds the newest frame
    window = torch.cat([stream[:, -W + 1 :], stream[:, :1]], dim=1)
    assert ring.window_index().tolist() == [3, 0, 1, 2]
    got, want = ring.read().kv, _fresh(model, window, calls)  # [layers, 2, B, nkv, W * block, hd]
    block = tokens + 2
    want_in_slot_order = want.unflatten(4, (W, block))[:, :, :, :, ring.window_index()].flatten(4, 5)
    # fp32 round-off of one frame's arithmetic (at its canonical place instead of its window place, and
    # the rotation to the slot's positions applied on its own): ~1e-7 per op. Nothing accumulates across
    # shifts; an error that did (or a wrong slot position) shows at 1e-3 or more.
    assert _relative(got, want_in_slot_order) < 1e-5
    # The denoising step reading the ring (slot order) equals the one reading the fresh window.
    z, t = torch.randn(1, G, 4, 4, 4), torch.full((1, G), 0.4)
    from_ring = model(calls.denoise, noisy=z, t=t, cache=ring.read())
    from_fresh = model(calls.denoise, noisy=z, t=t, cache=GraphCache(want))
    assert _relative(from_ring, from_fresh) < 1e-5


@torch.no_grad()
def test_a_partly_filled_ring_holds_the_frames_in_order():
    model = random_model(get_preset("gpdit-tiny"))
    calls = inference_calls(model.config, 2, 1, 1)
    ring = FrameRing(model.config, 2, 3, 1, calls.factor_set, torch.float32, "cpu")
    frames = torch.randn(2, 2, 4, 2, 2)
    ring.push(model, frames)
    assert ring.held == 2 and ring.window_index().tolist() == [0, 1]
    # fp32 round-off, as above.
    assert _relative(ring.read().kv, _fresh(model, frames, calls)) < 1e-5


def test_the_ring_refuses_masks_whose_clean_frames_see_each_other():
    for config in (get_preset("tiny"), get_preset("gpdit-tiny").replace(attention_mask="vanilla")):
        with pytest.raises(ConfigError, match="exact rolling window needs the lightweight mask"):
            FrameRing(config, 1, 4, 4, "long", torch.float32, "cpu")
    ring = FrameRing(get_preset("gpdit-tiny"), 1, 4, 4, "long", torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"frames \(1, 1, 4, 2, 2\) do not fit this ring: batch 1, 4 tokens"):
        ring.push(random_model(get_preset("gpdit-tiny")), torch.randn(1, 1, 4, 2, 2))
