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
    # A view with negative strides (frame[:, :, ::-1], BGR to RGB) is copied: torch takes none.
    t = torch.as_tensor(np.ascontiguousarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise FrameSizeError(f"frames must be [F, H, W, 3] RGB, got shape {tuple(t.shape)}")
    if t.dtype != torch.uint8:
        raise FrameSizeError(f"frames must be uint8, got {t.dtype}")
    if t.shape[1] < 1 or t.shape[2] < 1:
        raise FrameSizeError(f"frames of {t.shape[2]}x{t.shape[1]} px are empty: give frames of at least 1x1 px")
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


def _cover(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """The size an h x w frame is resized to so that it covers height x width, keeping its aspect."""
    scale = max(height / h, width / w)
    return max(height, round(h * scale)), max(width, round(w * scale))


def fit_frames(frames, height: int, width: int) -> torch.Tensor:
    """Resize to cover height x width (keeping aspect), then centre-crop to exactly that size.
    uint8 [F, H, W, 3] -> float32 [F, 3, height, width] in [-1, 1]."""
    x = _as_tensor(frames)
    rh, rw = _cover(*x.shape[-2:], height, width)
    return _center_crop(_resize(x, rh, rw), height, width).clamp(-1, 1)


def fit_for_display(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """`fit_frames`' resize and crop for the frames a person is shown: uint8 [H, W, 3] -> uint8 [height,
    width, 3], with OpenCV's area interpolation on the uint8 frame itself. No float copy of a full-size
    frame is made, which at 1080p (25 MB each, freed between small long-lived frames) fragments the heap
    so that the process grows with every frame read."""
    import cv2

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < 1:
        raise FrameSizeError(f"a frame must be uint8 RGB [H, W, 3] of at least 1x1 px, got {frame.shape} {frame.dtype}")
    rh, rw = _cover(*frame.shape[:2], height, width)
    if (rh, rw) != frame.shape[:2]:
        frame = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_AREA)
    top, left = (rh - height) // 2, (rw - width) // 2
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [F, 3, H, W] in [-1, 1] -> uint8 [F, H, W, 3]."""
    x = ((frames.detach().to(torch.float32).clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()  # [F, H, W, 3]
