"""GPDiT's rotation-based time conditioning: no time parameters, the noise level told by a rotation.

Reference: gpdit-reference.md section 3. Flow matching mixes the clean sample and the noise; read as a
rotation of (clean, noise) by an angle theta, the noise level is that angle, and the network is told it
by rotating each token's normalised features by its own theta (first half of the channels against the
second half), after every pre-norm and before the output head. Clean tokens sit at theta = 0, the
identity, so a clean frame's keys and values are the same in every denoising step and both guidance
branches, as with the time token.

Our convention is z_t = t * x + (1 - t) * eps (t = 1 clean, vgpt.sampler); the page writes the same
process with its t counting the other way, x_t = (1 - t) x_0 + t eps, and theta = atan2(t, 1 - t).
In our t that is theta = atan2(1 - t, t): 0 for a clean token, pi/2 for pure noise.
"""

from __future__ import annotations

import torch

from vgpt.rope import rotate_half


def rotation_angle(t: torch.Tensor) -> torch.Tensor:
    """theta = atan2(1 - t, t) in [0, pi/2] for noise levels t in [0, 1] (1 = clean), fp32."""
    t = t.to(torch.float32)
    return torch.atan2(1.0 - t, t)


def rotate_features(h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """[cos a - sin b, sin a + cos b] for a, b = the first and second halves of h [..., L, D]; cos and
    sin are [..., L, 1] per token (exactly the identity where theta = 0: h * 1 + r * 0 = h)."""
    cos, sin = cos.to(h.dtype), sin.to(h.dtype)
    return h * cos + rotate_half(h) * sin


def token_rotation(frame_angles: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin per token, each [B, F * block, 1] fp32, from one angle per frame [B, F] in sequence order."""
    angles = frame_angles.to(torch.float32).repeat_interleave(block, dim=1)[..., None]  # [B, L, 1]
    return torch.cos(angles), torch.sin(angles)
