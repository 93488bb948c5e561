import pytest
import torch

from vgpt.config import ConfigError
from vgpt.sampler import SamplerConfig, guide, sample, schedule, velocity


def test_schedule_and_shift():
    assert schedule(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    shifted = schedule(2, shift=3.0).tolist()  # t / (t + s - s*t): 0.5 -> 0.5 / (0.5 + 1.5)
    assert shifted == pytest.approx([0.0, 0.25, 1.0])
    assert schedule(50).dtype == torch.float32


def test_velocity_and_guidance():
    x, z = torch.tensor([2.0]), torch.tensor([1.0])
    assert velocity(x, z, 0.5, "x").item() == pytest.approx(2.0)  # (2 - 1) / (1 - 0.5)
    assert velocity(x, z, 0.5, "velocity").item() == 2.0  # passed through
    assert guide(torch.tensor([3.0]), torch.tensor([1.0]), 1.5).item() == pytest.approx(4.0)
    assert guide(torch.tensor([3.0]), None, 1.5).item() == 3.0


def test_perfect_x_prediction_lands_on_the_data():
    # If the model always predicts the true x, v = (x - z) / (1 - sigma) points straight at x and
    # the Euler steps reach it exactly at sigma = 1, whatever the schedule.
    x = torch.randn(2, 3, 4, 4, 4)
    z0 = torch.randn_like(x)
    for cfg in (SamplerConfig(steps=5, guidance=1.0), SamplerConfig(steps=7, shift=3.0, guidance=2.0)):
        out = sample(lambda z, s: (x, x), z0, cfg)
        torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)  # fp32 round-off over a few steps


def test_sampler_is_fp32_and_seeded():
    seen = []

    def denoise(z, sigma):
        seen.append((z.dtype, float(sigma)))
        return (z * 0.5).to(torch.bfloat16), None

    z0 = torch.randn(1, 1, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    out = sample(denoise, z0, SamplerConfig(steps=3, guidance=1.0))
    assert out.dtype == torch.float32
    assert seen == [(torch.float32, 0.0), (torch.float32, pytest.approx(1 / 3)), (torch.float32, pytest.approx(2 / 3))]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "SamplerConfig.steps=0"),
    ({"guidance": 0.5}, r"SamplerConfig.guidance=0.5: must be >= 1.0"),
    ({"shift": 0.0}, "SamplerConfig.shift=0.0"),
])  # fmt: skip
def test_sampler_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SamplerConfig(**kwargs)
