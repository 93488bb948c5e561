"""Flow-matching sampler of next clip diffusion, computed in fp32.

Reference: videogpt-reference.md section 7. Convention: z_t = t * x + (1 - t) * eps, so t = 0 is
pure noise and t = 1 is the clean latent; sampling integrates from t = 0 to t = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vgpt.config import SamplerConfig, Target

__all__ = ["SamplerConfig", "euler_step", "guide", "sample", "schedule", "sigma_table", "velocity"]


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t / (t + s - s*t): s > 1 moves noise levels toward t = 0 (pure noise), s = 1 is the identity."""
    return t / (t + shift - shift * t)


def schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """sigma_i = i / S for i = 0..S, shifted by shift_time. [S + 1] fp32."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    return shift_time(t, shift).to(torch.float32)


def sigma_table(config: SamplerConfig) -> torch.Tensor:
    """The sampler's noise levels [steps + 1] fp32: its explicit table, else the shifted schedule."""
    if config.timesteps is not None:
        return torch.tensor(config.timesteps, dtype=torch.float32)
    return schedule(config.steps, config.shift)


def velocity(output: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor | float, prediction: Target):
    """The flow velocity from the model's output: x-prediction gives (x - z) / (1 - sigma)."""
    output = output.to(torch.float32)
    if prediction == "velocity":
        return output
    return (output - z) / (1.0 - sigma)


def guide(v_cond: torch.Tensor, v_uncond: torch.Tensor | None, scale: float) -> torch.Tensor:
    """v_uncond + scale * (v_cond - v_uncond); the conditional velocity when guidance is off."""
    if v_uncond is None:
        return v_cond
    return v_uncond + scale * (v_cond - v_uncond)


def euler_step(z: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor):
    return z + (sigma_next - sigma) * v


# denoise(z, sigma) -> (conditional output, unconditional output or None)
DenoiseFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def sample(denoise: DenoiseFn, z: torch.Tensor, config: SamplerConfig, prediction: Target = "x") -> torch.Tensor:
    """Integrate one clip from noise z (sigma 0) to sigma 1 with Euler steps, in fp32."""
    sigmas = sigma_table(config).to(z.device)
    z = z.to(torch.float32)
    for i in range(config.steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        out_cond, out_uncond = denoise(z, sigma)
        v_cond = velocity(out_cond, z, sigma, prediction)
        v_uncond = None if out_uncond is None else velocity(out_uncond, z, sigma, prediction)
        z = euler_step(z, guide(v_cond, v_uncond, config.guidance), sigma, sigma_next)
    return z
