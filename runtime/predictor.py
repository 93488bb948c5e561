"""The embeddable predictor: observe camera frames, predict the next clips.

    predictor = load_predictor("bundle/")          # or a checkpoint folder, or the bundled default
    predictor.observe(frame)                       # uint8 RGB [H, W, 3] or [F, H, W, 3], any size
    clip = predictor.predict(num_clips=1)          # clip.frames: uint8 [G, H, W, 3]

The history is the newest M observed frames as latents; predictions never enter it (a multi-clip
prediction feeds each clip to the next on a copy). In the exact mode (the only
mode of static graphs) every predicted clip runs the history through prefill once, then S denoising
steps against that cache. `observe` and `predict` may be called from different threads.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgpt.config import Layout
from vgpt.errors import VgptError
from vgpt.frames import fit_frames, to_uint8
from vgpt.runtime.backends.base import Backend

log = logging.getLogger(__name__)


class NotEnoughHistoryError(VgptError, RuntimeError):
    """predict() before M frames were observed."""


@dataclass
class Prediction:
    frames: np.ndarray  # uint8 [num_clips * G, H, W, 3]
    latents: np.ndarray | None  # float32 [num_clips * G, C, h, w] when asked for
    seconds_per_clip: float
    seconds_per_step: float  # denoising loop time / steps
    timings: dict[str, float] = field(default_factory=dict)


MODES = ("exact", "rolling")


class VideoPredictor:
    """mode "exact" (default): every prediction runs prefill on the newest M frames. mode "rolling": the
    cache is filled once and then slid by one frame per observed frame (`Backend.append`), so a
    prediction starts without prefill; approximate, because kept frames remember dropped ones."""

    def __init__(self, backend: Backend, mode: str = "exact") -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: choose one of {MODES}")
        if mode == "rolling" and not backend.supports_rolling:
            raise ValueError(f"the {backend.name} backend (or its bundle) has no rolling mode; use mode='exact'")
        self.backend = backend
        self.mode = mode
        self._warm = False  # rolling: the backend's cache holds the observed window
        self.layout: Layout = backend.layout
        self._history: collections.deque[np.ndarray] = collections.deque(maxlen=self.layout.history_frames)
        self._lock = threading.Lock()
        self.observed = 0

    @property
    def ready(self) -> bool:
        return len(self._history) >= self.layout.history_frames

    def reset(self) -> None:
        with self._lock:
            self._history.clear()
            self.observed = 0
            self._warm = False

    def observe(self, frames: np.ndarray) -> None:
        """Add frames (uint8 RGB [H, W, 3] or [F, H, W, 3], any size: resized and centre-cropped)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        H, W = self.layout.pixel_size
        x = fit_frames(frames, H, W).numpy()  # [F, 3, H, W]
        latents = [self.backend.encode(x[i : i + 1])[0] for i in range(len(x))]
        with self._lock:
            for latent in latents:
                self._history.append(latent)
                self.observed += 1
                if self.mode == "rolling":
                    if self._warm:
                        self.backend.append(latent[None, None])
                    elif self.ready:
                        self.backend.prefill(np.stack(list(self._history))[None])
                        self._warm = True

    def predict(self, num_clips: int = 1, generator: torch.Generator | None = None, return_latents: bool = False,
                on_clip: Callable[[int], None] | None = None) -> Prediction:  # fmt: skip
        """The next num_clips * G frames; each predicted clip joins the history for the next."""
        if num_clips < 1:
            raise ValueError(f"num_clips={num_clips}: must be >= 1")
        with self._lock:
            M = self.layout.history_frames
            if len(self._history) < M:
                raise NotEnoughHistoryError(
                    f"predict() needs {M} observed frames (the layout's history), only {len(self._history)} so far"
                )
            history = np.stack(list(self._history))[None]  # [1, M, C, h, w]
            shape = (1, self.layout.clip_frames, *history.shape[2:])
            clips, latents = [], []
            t_prefill = t_denoise = t_decode = 0.0
            start = time.perf_counter()
            for k in range(num_clips):
                t0 = time.perf_counter()
                if not (self.mode == "rolling" and self._warm and k == 0):
                    self.backend.prefill(history)
                    self._warm = False  # the rolling window is rebuilt from the observed frames
                t1 = time.perf_counter()
                z = torch.randn(shape, generator=generator).numpy()
                clip = self.backend.denoise(z)  # [1, G, C, h, w]
                t2 = time.perf_counter()
                clips.append(self.backend.decode(clip[0]))
                t3 = time.perf_counter()
                t_prefill, t_denoise, t_decode = t_prefill + t1 - t0, t_denoise + t2 - t1, t_decode + t3 - t2
                latents.append(clip[0])
                history = np.concatenate([history, clip], axis=1)[:, -M:]  # autoregression on a copy
                if on_clip is not None:
                    on_clip(len(clips))
            elapsed = time.perf_counter() - start
        frames = to_uint8(torch.from_numpy(np.concatenate(clips)))
        return Prediction(
            frames=frames,
            latents=np.concatenate(latents) if return_latents else None,
            seconds_per_clip=elapsed / num_clips,
            seconds_per_step=t_denoise / (num_clips * self.backend.steps),
            timings={
                "prefill": t_prefill / num_clips,
                "denoise": t_denoise / num_clips,
                "decode": t_decode / num_clips,
            },
        )

    def stream(self, frames: Iterable[np.ndarray], every: int | None = None,
               generator: torch.Generator | None = None) -> Iterator[tuple[int, Prediction]]:  # fmt: skip
        """For a live source: observe each frame; once M frames are in, predict the next clip every
        `every` frames (default G). Yields (frames observed so far, prediction)."""
        every = every or self.layout.clip_frames
        since = 0
        for frame in frames:
            self.observe(frame)
            since += 1
            if self.ready and since >= every:
                since = 0
                yield self.observed, self.predict(1, generator)


def load_predictor(
    source: str | Path | None = None,
    backend: str = "onnxruntime",
    threads: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    mode: str = "exact",
    codec: str | Path | None = None,
    providers: list[str] | None = None,
) -> VideoPredictor:
    """A predictor from a bundle (folder, or a graph file whose manifest sits above it), a checkpoint
    or training run folder (exported on first use; `codec` when none sits beside it), or the bundled
    default (None). `providers`: ONNX Runtime execution providers in order of preference ("cpu", "cuda",
    "tensorrt"); one that is missing is an error, never a silent fall back to the CPU."""
    from vgpt.runtime.loading import open_backend

    return VideoPredictor(open_backend(source, backend, threads, steps, guidance, codec, providers), mode)
