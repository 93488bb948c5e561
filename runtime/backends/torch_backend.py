"""The PyTorch reference backend: the same graph modules that are exported, run eagerly."""

from __future__ import annotations

import numpy as np
import torch

from vgpt.codecs.base import LatentCodec
from vgpt.commands import torch_threads
from vgpt.export.graphs import GraphContext, build_graph
from vgpt.export.registry import entries
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, FRAME, PREFILL, RING, exact_rolling
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.runtime.backends.base import Backend, Model
from vgpt.sampler import SamplerConfig


class TorchModel(Model):
    """The graph modules export exports (vgpt.export.registry), run eagerly: read-only in inference, so every
    stream shares them."""

    name = "torch"

    def __init__(self, model: VideoGPT, codec: LatentCodec, layout: Layout, sampler: SamplerConfig,
                 threads: int | None = None) -> None:  # fmt: skip
        torch_threads(threads)  # the default leaves the cores other processes use alone
        self.layout, self.steps = layout, sampler.steps
        context = GraphContext(model.eval(), codec.eval(), layout, sampler)
        self.graphs = {e.name: build_graph(e, context) for e in entries(model.config)}
        # GPDiT's lightweight mask: the exact ring of the newest M frames' keys/values (export/gpdit_graphs.py).
        self.exact_rolling = exact_rolling(model.config)

    def stream(self) -> TorchBackend:
        return TorchBackend.over(self)


class TorchBackend(Backend):
    """One stream over a `TorchModel`: its KV cache and ring. `TorchBackend(model, codec, ...)` loads the model
    and opens its first stream."""

    name = "torch"

    def __init__(self, model: VideoGPT, codec: LatentCodec, layout: Layout, sampler: SamplerConfig,
                 threads: int | None = None) -> None:  # fmt: skip
        self._attach(TorchModel(model, codec, layout, sampler, threads))

    def _attach(self, model: TorchModel) -> None:
        self.model, self.layout, self.steps, self.exact_rolling = model, model.layout, model.steps, model.exact_rolling
        g = model.graphs
        self._encoder, self._prefill, self._denoise, self._decoder = g[ENCODER], g[PREFILL], g[DENOISE], g[DECODER]
        self._append = g.get(APPEND)
        if self.exact_rolling:
            self._frame, self._read = g[FRAME], g[RING]
        self._kv: torch.Tensor | None = None
        self._ring: torch.Tensor | None = None  # [M, layers, 2, 1, nkv, block, hd]
        self._count = 0  # frames pushed into the ring

    @property
    def supports_rolling(self) -> bool:
        return self._append is not None or self.exact_rolling

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
        if self._append is None:
            super().append(latents)
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
