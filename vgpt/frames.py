"""Frame preprocessing: uint8 RGB frames <-> model frames in [-1, 1].

The released pipeline keeps the aspect ratio, limits the longest side to 320 px and crops each side
to a multiple of 16 (VAE 8x times patch 2); `fit_frames` instead produces one exact size, for a
static layout.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vgpt.errors import VgptError


class FrameSizeError(VgptError, ValueError):
    """Frames that cannot be brought to the size asked for."""


def _as_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float32 [F, 3, H, W] in [-1, 1]."""
    t = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise FrameSizeError(f"frames must be [F, H, W, 3] RGB, got shape {tuple(t.shape)}")
    if t.dtype != torch.uint8:
        raise FrameSizeError(f"frames must be uint8, got {t.dtype}")
    return t.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # [F, 3, H, W]


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def preprocess_frames(frames, max_side: int = 320, multiple: int = 16) -> torch.Tensor:
    """Released preprocessing: keep aspect, longest side <= max_side, centre-crop each side to a
    multiple of `multiple`. uint8 [F, H, W, 3] -> float32 [F, 3, H', W'] in [-1, 1]."""
    x = _as_tensor(frames)
    h, w = x.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    rh, rw = round(h * scale), round(w * scale)
    if rh < multiple or rw < multiple:
        raise FrameSizeError(
            f"frames of {h}x{w} px are too small: each side must reach {multiple} px after limiting "
            f"the longest side to {max_side}"
        )
    x = _resize(x, rh, rw)
    return _center_crop(x, rh - rh % multiple, rw - rw % multiple).clamp(-1, 1)


def fit_frames(frames, height: int, width: int) -> torch.Tensor:
    """Resize to cover height x width (keeping aspect), then centre-crop to exactly that size.
    uint8 [F, H, W, 3] -> float32 [F, 3, height, width] in [-1, 1]."""
    x = _as_tensor(frames)
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    return _center_crop(_resize(x, rh, rw), height, width).clamp(-1, 1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [F, 3, H, W] in [-1, 1] -> uint8 [F, H, W, 3]."""
    x = ((frames.detach().to(torch.float32).clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()  # [F, H, W, 3]
