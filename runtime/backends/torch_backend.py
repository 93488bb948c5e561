"""The PyTorch reference backend: the same graph modules that are exported, run eagerly."""

from __future__ import annotations

import copy

import numpy as np
import torch

from vgpt.codecs.base import LatentCodec
from vgpt.commands import torch_threads
from vgpt.export.graphs import AppendGraph, DecoderGraph, DenoiseGraph, EncoderGraph, PrefillGraph
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

    supports_rolling = True

    def stream(self) -> TorchBackend:
        """Another stream: the same graph modules (read-only in inference), its own KV cache."""
        other = copy.copy(self)
        other._kv = None
        return other

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
