"""The exported graph modules in eager PyTorch: the two-part attention step equals the concatenating one."""

import torch

from tests.conftest import random_model
from vgpt.config import get_preset
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.layout import Layout
from vgpt.sampler import SamplerConfig


def test_the_two_part_denoising_step_equals_the_concatenating_one():
    config = get_preset("tiny")
    model = random_model(config)
    layout = Layout.for_model(config, 3, 2, 4, 4)
    sampler = SamplerConfig(steps=4, guidance=2.0)
    gen = torch.Generator().manual_seed(1)
    history, z = torch.randn(1, 3, 4, 4, 4, generator=gen), torch.randn(1, 2, 4, 4, 4, generator=gen)
    with torch.no_grad():
        kv = PrefillGraph(model, layout, sampler)(history)
        plain = DenoiseGraph(model, layout, sampler)
        split = DenoiseGraph(model, layout, sampler, two_part=True)
        assert not split.past_masked  # the clip sees the whole history (reference section 8)
        for step in (0, 3):
            want, got = plain(z, kv, torch.tensor([step]))[0], split(z, kv, torch.tensor([step]))[0]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
