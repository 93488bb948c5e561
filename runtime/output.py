"""What vgpt-run writes: a side-by-side video, optional PNG frames and latents, all atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgpt.atomic import atomic_dir, atomic_file


def panel_scale(height: int) -> int:
    """Small frames are enlarged (nearest neighbour) so that a person can see them and read labels."""
    return max(1, 256 // height)


def _label(img: np.ndarray, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(img)
    scale = max(0.35, img.shape[0] / 512)
    cv2.putText(out, text, (4, int(14 * scale / 0.35)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, int(14 * scale / 0.35)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, left_label: str, right_label: str) -> np.ndarray:
    """Two uint8 [H, W, 3] frames, enlarged and labelled, with a 4 px divider."""
    s = panel_scale(left.shape[0])
    big = [np.repeat(np.repeat(f, s, axis=0), s, axis=1) for f in (left, right)]
    divider = np.full((big[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([_label(big[0], left_label, (255, 255, 255)), divider,
                           _label(big[1], right_label, (255, 220, 80))], axis=1)  # fmt: skip


def compose(observed: list[np.ndarray], context: int, predicted: np.ndarray) -> list[np.ndarray]:
    """Frames of the output video: left, what the camera saw (context, then the real future where the
    input has it); right, the context and then the prediction."""
    frames = []
    total = context + len(predicted)
    blank = np.zeros_like(predicted[0])
    for t in range(total):
        left = observed[t] if t < len(observed) else blank
        left_label = "observed" if t < context else ("observed (future)" if t < len(observed) else "no input")
        right = observed[t] if t < context else predicted[t - context]
        right_label = "context" if t < context else f"predicted +{t - context + 1}"
        frames.append(side_by_side(left, right, left_label, right_label))
    return frames


def write_pngs(folder: str | Path, frames: np.ndarray) -> Path:
    """Write frames as 000000.png ... into `folder`, built in a temporary sibling and renamed."""
    import cv2

    with atomic_dir(folder, overwrite=True) as tmp:
        for i, f in enumerate(frames):
            if not cv2.imwrite(str(tmp / f"{i:06d}.png"), np.ascontiguousarray(f[:, :, ::-1])):
                raise OSError(f"cannot write PNG frames under {folder}")
    return folder


def write_latents(path: str | Path, **arrays: np.ndarray) -> Path:
    with atomic_file(path) as f:
        np.savez(f, **arrays)
    return Path(path)
