"""The one clip loop of vgpt: next-clip prediction, autoregressively.

The reference predictors (`vgpt.predictors.Predictor.predict`), vgpt-eval's checkpoint rollouts
(`vgpt.evaluation.rollout_checkpoint`) and the runtime's `rollout` (every command's, through a backend)
all run `roll_clips`: what differs between them is only how one clip is predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

Frames = TypeVar("Frames")  # a torch.Tensor or a numpy array [B, F, ...], frames along axis 1


def roll_clips(window: Frames, generators: Sequence[Any], predict_clip: Callable[[Frames, Any], Frames],
               keep: int | None = None, on_clip: Callable[[int], None] | None = None) -> list[Frames]:  # fmt: skip
    """For each of `generators` in turn: predict the next clip from `window` with that clip's noise
    generator (`predict_clip(window, generator)` -> the clip [B, G, ...]), then append the clip to the
    window, keeping its newest `keep` frames (None: every frame, the window grows). `on_clip(k)` after
    the k-th clip. Returns the clips in order."""
    clips = []
    for k, generator in enumerate(generators):
        clip = predict_clip(window, generator)
        clips.append(clip)
        if k + 1 < len(generators):
            window = _append(window, clip, keep)
        if on_clip is not None:
            on_clip(k + 1)
    return clips


def _append(window, clip, keep: int | None):
    if isinstance(window, np.ndarray):
        joined = np.concatenate([window, clip], axis=1)
    else:
        import torch

        joined = torch.cat([window, clip], dim=1)
    return joined if keep is None else joined[:, -keep:]
