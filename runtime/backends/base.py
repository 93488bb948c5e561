"""The backend interface, in two parts as the C/C++ runtime has them (model.hpp): a `Model` is what is loaded
once and never changes (ONNX Runtime sessions, TensorRT engines, PyTorch modules; the layout and the
sampler), shared by any number of streams; a `Backend` is one stream over it (`model.stream()`), what the
predictor asks of a loaded model.

A backend owns every buffer it needs, allocated once: the KV cache (written by prefill, read by every
denoising step), the latent clip (two buffers that the steps alternate between) and the I/O of the
codec graphs. `denoise` runs the whole S-step loop inside the backend, so that a backend can run it
with no host work per step (ONNX Runtime: bound OrtValues; TensorRT: one CUDA graph).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from vgpt.layout import Layout


class Model(ABC):
    """A loaded model: immutable, shared by every stream opened over it (the C/C++ runtime's `vgpt::Model`)."""

    name: str
    layout: Layout
    steps: int

    @abstractmethod
    def stream(self) -> Backend:
        """A new stream over this model: its own buffers, KV cache and bindings (or execution contexts)."""


class Backend(ABC):
    name: str
    layout: Layout
    steps: int
    model: Model  # what this stream runs over, shared with every other stream of it

    @classmethod
    def over(cls, model: Model) -> Backend:
        """A new stream over a loaded model."""
        backend = cls.__new__(cls)
        backend._attach(model)
        return backend

    @abstractmethod
    def _attach(self, model: Model) -> None:
        """This stream's own state over `model`: its buffers, KV cache, bindings or contexts."""

    @abstractmethod
    def encode(self, frame: np.ndarray) -> np.ndarray:
        """One frame [1, 3, H, W] float32 in [-1, 1] -> latents [1, C, h, w]."""

    @abstractmethod
    def prefill(self, history: np.ndarray) -> None:
        """History latents [1, M, C, h, w] -> the backend's KV cache."""

    supports_rolling: bool = False

    def append(self, latents: np.ndarray) -> None:
        """Rolling mode: slide the cached window by one frame with these latents [1, 1, C, h, w],
        without re-running the kept frames (approximate)."""
        raise NotImplementedError(f"the {self.name} backend has no rolling mode")

    # GPDiT's lightweight mask: the window slides exactly, one frame computed alone per observed frame.
    exact_rolling: bool = False

    def push(self, latents: np.ndarray) -> None:
        """Exact rolling: compute this observed frame's keys/values alone [1, 1, C, h, w] into the ring slot
        of the oldest frame (the window's other frames are not touched)."""
        raise NotImplementedError(f"the {self.name} backend has no exact rolling window for this model")

    def read_window(self) -> None:
        """Exact rolling: the ring's newest M frames, each at its window position, as the KV cache."""
        raise NotImplementedError(f"the {self.name} backend has no exact rolling window for this model")

    def cache(self) -> np.ndarray:
        """A copy of the KV cache the next denoising steps read [layers, 2, 1, nkv, M * block, hd]."""
        raise NotImplementedError(f"the {self.name} backend does not expose its KV cache")

    @abstractmethod
    def denoise(self, z: np.ndarray) -> np.ndarray:
        """Noise [1, G, C, h, w] -> the denoised clip after all S steps, against the current cache."""

    def stream(self) -> Backend:
        """A backend for another stream over the same loaded model: it shares what is immutable (sessions,
        engines, modules) and owns its buffers and KV cache, so that streams run concurrently."""
        return self.model.stream()

    @abstractmethod
    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents [G, C, h, w] -> frames [G, 3, H, W] float32 in about [-1, 1]."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release what the backend holds."""
