"""The PyTorch reference backend: the same graph modules that are exported, run eagerly."""

from __future__ import annotations

import copy

import numpy as np
import torch

from vgpt.codecs.base import LatentCodec
from vgpt.commands import torch_threads
from vgpt.export.gpdit_graphs import FrameGraph, RingGraph
from vgpt.export.graphs import AppendGraph, DecoderGraph, DenoiseGraph, EncoderGraph, PrefillGraph
from vgpt.export.spec import exact_rolling
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.runtime.backends.base import Backend
from vgpt.sampler import SamplerConfig


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: VideoGPT, codec: LatentCodec, layout: Layout, sampler: SamplerConfig,
                 threads: int | None = None) -> None:  # fmt: skip
        torch_threads(threads)  # the default leaves the cores other processes use alone
        self.layout, self.steps = layout, sampler.steps
        self._encoder = EncoderGraph(codec).eval()
        self._prefill = PrefillGraph(model.eval(), layout, sampler)
        self._denoise = DenoiseGraph(model, layout, sampler)
        self._decoder = DecoderGraph(codec).eval()
        self._append = AppendGraph(model, layout, sampler)
        self._kv: torch.Tensor | None = None
        # GPDiT's lightweight mask: the exact ring of the newest M frames' keys/values (export/gpdit_graphs.py).
        self.exact_rolling = exact_rolling(model.config)
        if self.exact_rolling:
            self._frame, self._read = FrameGraph(model, layout), RingGraph(model, layout)
        self._ring: torch.Tensor | None = None  # [M, layers, 2, 1, nkv, block, hd]
        self._count = 0  # frames pushed into the ring

    supports_rolling = True

    def stream(self) -> TorchBackend:
        """Another stream: the same graph modules (read-only in inference), its own KV cache and ring."""
        other = copy.copy(self)
        other._kv, other._ring, other._count = None, None, 0
        return other

    @torch.no_grad()
    def push(self, latents: np.ndarray) -> None:
        if not self.exact_rolling:
            super().push(latents)
        kv = self._frame(torch.from_numpy(latents))  # [layers, 2, 1, nkv, block, hd]
        if self._ring is None:
            self._ring = kv.new_zeros((self.layout.history_frames, *kv.shape))
        self._ring[self._count % self.layout.history_frames] = kv
        self._count += 1

    @torch.no_grad()
    def read_window(self) -> None:
        M = self.layout.history_frames
        if self._count < M:
            raise RuntimeError(f"the ring holds {self._count} of its {M} frames: push the whole window first")
        self._kv = self._read(self._ring, torch.tensor([self._count % M]))

    def cache(self) -> np.ndarray:
        return self._kv.numpy().copy()

    @torch.no_grad()
    def encode(self, frame: np.ndarray) -> np.ndarray:
        return self._encoder(torch.from_numpy(frame)).numpy()

    @torch.no_grad()
    def prefill(self, history: np.ndarray) -> None:
        self._kv = self._prefill(torch.from_numpy(history))

    @torch.no_grad()
    def append(self, latents: np.ndarray) -> None:
        self._kv = self._append(torch.from_numpy(latents), self._kv)

    @torch.no_grad()
    def denoise(self, z: np.ndarray) -> np.ndarray:
        if self._kv is None:
            raise RuntimeError("denoise() before prefill(): the KV cache is empty")
        zt, step = torch.from_numpy(z.copy()), torch.zeros(1, dtype=torch.int64)
        for _ in range(self.steps):
            zt, step = self._denoise(zt, self._kv, step)
        return zt.numpy()

    @torch.no_grad()
    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self._decoder(torch.from_numpy(latents)).numpy()
