"""cached equals full: the backbone of every later equivalence test.

Tolerance: both predictors compute the same fp32 arithmetic, grouped differently (attention over
a concatenated cache vs the whole sequence, different matmul shapes). Round-off is ~1e-7 relative
per op; through 2 layers and up to 6 Euler steps whose x-to-velocity division by (1 - sigma)
amplifies it by up to 6x, differences stay ~1e-6 on O(1) latents. 1e-4 leaves room for other
BLAS builds while any real discrepancy (a wrong mask row, position or factor set) is O(0.1).
"""

import pytest
import torch

from tests.conftest import random_model
from vgpt.config import ConfigError, get_preset
from vgpt.predictors import CachedPredictor, FullPredictor, RollingPredictor, inference_calls
from vgpt.sampler import SamplerConfig

ATOL = 1e-4


def _run(model, cls, history, clips, clip, sampler, window, seed=7):
    predictor = cls(model, sampler, window=window)
    return predictor.predict(history, clips, clip, torch.Generator().manual_seed(seed)), predictor


@pytest.mark.parametrize("policy", ["long", "length"])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
@pytest.mark.parametrize(
    ("history", "clip", "latent", "window"),
    [
        (1, 1, (2, 2), None),  # smallest layout, history grows without a window
        (6, 2, (4, 6), None),  # history grows across tiny's short/long factor switch (64 tokens)
        (6, 2, (4, 6), 8),  # the same switch while appending would still fit the window
        (3, 2, (4, 6), 4),  # window fills (appends), then slides (re-prefill)
        (5, 3, (2, 4), 5),  # window full from the start: slides every clip
    ],
)
def test_cached_equals_full(policy, guidance, history, clip, latent, window):
    model = random_model(get_preset("tiny").replace(rope_factor_policy=policy))
    hist = torch.randn(2, history, 4, *latent, generator=torch.Generator().manual_seed(1))
    sampler = SamplerConfig(steps=4, guidance=guidance, shift=2.0)
    full, _ = _run(model, FullPredictor, hist, 3, clip, sampler, window)
    cached, _ = _run(model, CachedPredictor, hist, 3, clip, sampler, window)
    assert full.shape == (2, 3 * clip, 4, *latent)
    assert full.abs().max() > 0.1  # a non-trivial prediction
    torch.testing.assert_close(cached, full, atol=ATOL, rtol=0)


def test_length_policy_case_crosses_the_factor_switch():
    """The (6, 2, 4x6) case above switches from short to long factors between its first and second
    clip (tiny's original context is 64 tokens), so the cache must be rebuilt when the set changes."""
    c = get_preset("tiny").replace(rope_factor_policy="length")
    tokens = 2 * 3  # 4x6 latents -> 2x3 patches; block 8
    assert inference_calls(c, 6, 2, tokens).factor_set == "short"  # largest position (6 + 2) * 8 - 1 = 63
    assert inference_calls(c, 8, 2, tokens).factor_set == "long"  # 79 >= 64


def test_cached_appends_while_the_window_has_room():
    model = random_model(get_preset("tiny"))
    hist = torch.randn(1, 2, 4, 2, 2)
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(len(args[0].frames)), with_kwargs=True)
    sampler = SamplerConfig(steps=2, guidance=1.0)
    _, predictor = _run(model, CachedPredictor, hist, 3, 1, sampler, window=4)
    # clip 1: prefill 2 frames + 2 steps; clip 2: append 1 frame + 2 steps; clip 3: append 1 + 2;
    # each step runs only the 1-frame noisy clip.
    assert calls == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert predictor.cache.length == 4 * 3  # 4 history frames of 3 tokens (one 2x2-latent patch + 2 specials)
    calls.clear()
    _run(model, CachedPredictor, hist, 2, 1, sampler, window=2)
    # Window full: every clip re-runs the whole window (exact), never appends.
    assert calls == [2, 1, 1, 2, 1, 1]


def test_full_recomputes_history_every_step():
    model = random_model(get_preset("tiny"))
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(len(args[0].frames)), with_kwargs=True)
    _run(model, FullPredictor, torch.randn(1, 3, 4, 2, 2), 1, 2, SamplerConfig(steps=2, guidance=2.0), None)
    # Per step: the conditional branch (history + clip) and the unconditional one padded to the same
    # length, as the released pipeline batches them.
    assert calls == [5, 5, 5, 5]


def test_padded_unconditional_branch_equals_the_plain_one():
    model = random_model(get_preset("tiny"))
    hist = torch.randn(2, 3, 4, 4, 4)
    sampler = SamplerConfig(steps=3, guidance=2.5)
    padded, _ = _run(model, FullPredictor, hist, 2, 2, sampler, 3)
    plain = FullPredictor(model, sampler, window=3, pad_uncond=False).predict(
        hist, 2, 2, torch.Generator().manual_seed(7)
    )
    torch.testing.assert_close(padded, plain, atol=ATOL, rtol=0)


def test_velocity_checkpoints_agree_too():
    model = random_model(get_preset("tiny").replace(prediction="velocity"))
    hist = torch.randn(1, 2, 4, 2, 2)
    sampler = SamplerConfig(steps=3)
    full, _ = _run(model, FullPredictor, hist, 2, 2, sampler, 3)
    cached, _ = _run(model, CachedPredictor, hist, 2, 2, sampler, 3)
    torch.testing.assert_close(cached, full, atol=ATOL, rtol=0)


def test_seeds_make_runs_reproducible():
    model = random_model(get_preset("tiny"))
    hist = torch.randn(1, 2, 4, 2, 2)
    sampler = SamplerConfig(steps=2)
    a, _ = _run(model, CachedPredictor, hist, 1, 2, sampler, None, seed=1)
    b, _ = _run(model, CachedPredictor, hist, 1, 2, sampler, None, seed=1)
    c, _ = _run(model, CachedPredictor, hist, 1, 2, sampler, None, seed=2)
    assert torch.equal(a, b) and not torch.allclose(a, c)


GPDIT_VARIANTS = [
    {},  # lightweight mask, rotation
    {"attention_mask": "vanilla"},
    {"time_conditioning": "time_token"},
    {"rope_factor_policy": "length"},
]


@pytest.mark.parametrize("variant", GPDIT_VARIANTS)
@pytest.mark.parametrize(("history", "clip", "window"), [(1, 1, None), (6, 2, 8), (3, 2, 4), (5, 3, 5)])
def test_cached_equals_full_for_gpdit(variant, history, clip, window):
    # The same tolerance as for Video-GPT (module docstring): the arithmetic is the same, grouped differently.
    model = random_model(get_preset("gpdit-tiny").replace(**variant))
    hist = torch.randn(2, history, 4, 4, 6, generator=torch.Generator().manual_seed(1))
    sampler = SamplerConfig(steps=3, guidance=2.0, shift=2.0)
    full, _ = _run(model, FullPredictor, hist, 3, clip, sampler, window)
    cached, _ = _run(model, CachedPredictor, hist, 3, clip, sampler, window)
    assert full.abs().max() > 0.1
    torch.testing.assert_close(cached, full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", [v for v in GPDIT_VARIANTS if v.get("attention_mask") != "vanilla"])
@pytest.mark.parametrize(("history", "clip", "window"), [(1, 1, None), (6, 2, 8), (3, 2, 4), (5, 3, 5), (7, 1, 3)])
def test_rolling_equals_full_for_the_lightweight_mask(variant, history, clip, window):
    """The ring computes each clean frame alone at one place and rotates its keys when read; the full
    predictor re-runs the window: the same values to fp32 round-off, however often the window slid."""
    model = random_model(get_preset("gpdit-tiny").replace(**variant))
    hist = torch.randn(2, history, 4, 4, 6, generator=torch.Generator().manual_seed(1))
    sampler = SamplerConfig(steps=3, guidance=2.0, shift=2.0)
    full, _ = _run(model, FullPredictor, hist, 4, clip, sampler, window)
    rolling, _ = _run(model, RollingPredictor, hist, 4, clip, sampler, window)
    torch.testing.assert_close(rolling, full, atol=ATOL, rtol=0)


def test_rolling_computes_each_frame_once():
    model = random_model(get_preset("gpdit-tiny"))
    calls = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append((len(args[0].frames), kwargs.get("clean", kwargs.get("noisy")).shape[0])),
        with_kwargs=True,
    )
    _run(model, RollingPredictor, torch.randn(1, 3, 4, 2, 2), 3, 1, SamplerConfig(steps=2, guidance=1.0), 3)
    # The history's 3 frames as one batch of single-frame calls, then per clip 2 steps of the 1-frame unit and,
    # before the next clip, its frame alone: the window slides without re-running the kept frames.
    assert calls == [(1, 3), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1), (1, 1)]


def test_rolling_refuses_masks_whose_clean_frames_see_each_other():
    with pytest.raises(ConfigError, match=r"exact rolling window needs the lightweight mask; .* 'hierarchical'"):
        _run(random_model(get_preset("tiny")), RollingPredictor, torch.randn(1, 2, 4, 2, 2), 1, 1,
             SamplerConfig(steps=1), None)  # fmt: skip
