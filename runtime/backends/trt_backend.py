"""The TensorRT backend: the engines of `vgpt-build`, every device buffer allocated once, and the whole
S-step denoising loop of a clip captured in one CUDA graph and replayed per clip.

Device memory, the streams and the CUDA graph come from PyTorch's CUDA runtime (a CUDA build of torch
is on every machine that has TensorRT and vgpt); TensorRT and CUDA are imported when this backend is
opened, never by `import vgpt`. The device buffers and what binds to each come from the layout's binding
plan in the manifest (vgpt.export.registry.BindingPlan): one KV cache bound to both the prefill and the
denoising engine, and two z and two step buffers the steps alternate between, so the captured loop needs no
host write: the step index advances on the device.

Threads: `encode` may run while `denoise` runs in another thread (the predictor's observe() and
predict()), so the encoder has its own CUDA stream and activation block; the capture is thread-local
and holds a lock encode also takes, so no other thread's work is recorded into the graph. Where the
capture fails, the steps run without a graph (as trtexec does), with one warning per stream.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgpt.engines.buffers import (
    ENGINE_PHASES,
    SHARED_ACTIVATION_GRAPHS,
    StreamIo,
    aligned_bytes,
    engine_buffers,
    shared_activation_bytes,
)
from vgpt.engines.build import gpu_identity, import_tensorrt
from vgpt.engines.manifest import ENGINE_GRAPHS, check_engine_folder, engine_folder
from vgpt.export.contract import EngineError
from vgpt.export.registry import BindingPlan
from vgpt.export.spec import DECODER, DENOISE, ENCODER, PREFILL
from vgpt.layout import Layout
from vgpt.runtime.backends.base import Backend, Model

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TensorRTModel(Model):
    """Deserialized engines (read-only once built) and the binding plan every stream binds them by, shared by
    every stream; `stream()` opens one (its own contexts, device buffers and CUDA streams)."""

    trt: Any
    torch: Any
    engines: dict
    plan: BindingPlan
    layout: Layout
    steps: int
    device: Any
    use_cuda_graph: bool = True
    manifest: Any = None  # the engines folder's EngineManifest
    logger: Any = None  # TensorRT's runtime logs through it while the engines live
    name = "tensorrt"

    @classmethod
    def load(cls, source: str | Path, bundle: str | Path | None = None, use_cuda_graph: bool = True) -> TensorRTModel:
        """The engines of a vgpt-build folder (or its model.plan), checked (check_engine_folder) and
        deserialized; `bundle`: where the bundle they were built from is now."""
        import torch

        folder = engine_folder(source)  # a missing engine manifest is reported before a missing TensorRT
        trt = import_tensorrt()
        manifest, entry = check_engine_folder(folder, trt.__version__, *gpu_identity(), bundle=bundle)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engines = {}
        for graph in ENGINE_GRAPHS:
            engine = runtime.deserialize_cuda_engine((folder / manifest.plans[graph].file).read_bytes())
            if engine is None:
                raise EngineError(f"TensorRT cannot deserialize {graph}'s engine; rebuild with vgpt-build")
            engines[graph] = engine
        return cls(trt, torch, engines, entry.bindings, entry.layout, manifest.sampler.steps, torch.device("cuda"),
                   use_cuda_graph, manifest, logger)  # fmt: skip

    def stream(self) -> TensorRTBackend:
        return TensorRTBackend.over(self)


class TensorRTBackend(Backend):
    """One stream over a `TensorRTModel`. `TensorRTBackend(folder)` deserializes the engines and opens their
    first stream."""

    name = "tensorrt"

    def __init__(self, source: str | Path, bundle: str | Path | None = None, use_cuda_graph: bool = True) -> None:
        self._attach(TensorRTModel.load(source, bundle, use_cuda_graph))

    @classmethod
    def from_engines(cls, trt, torch, engines: dict, plan: BindingPlan, layout: Layout, steps: int,
                     device, use_cuda_graph: bool = True) -> TensorRTBackend:  # fmt: skip
        """The backend over engines already deserialized (what `__init__` ends with; the tests give it
        stand-ins of TensorRT's engines and of torch's CUDA runtime)."""
        return cls.over(TensorRTModel(trt, torch, engines, plan, layout, steps, device, use_cuda_graph))

    def stream(self) -> TensorRTBackend:
        """Another stream over the same deserialized engines: its own execution contexts, device
        buffers, activation memory, CUDA streams and captured graph."""
        if not self._engines:
            raise EngineError("this TensorRT backend is closed: open the engines again for another stream")
        return self.model.stream()

    def _attach(self, model: TensorRTModel) -> None:
        """This stream's state: contexts with their tensor addresses and activation memory set once,
        every buffer once on the device, two CUDA streams, and (on first use) the captured loop."""
        self.model, self.manifest = model, model.manifest
        self._trt, self._torch, self._cuda, self._engines = model.trt, model.torch, model.torch.cuda, model.engines
        self.plan, self.layout, self.steps, self.device = model.plan, model.layout, model.steps, model.device
        self.io = StreamIo.of(model.plan, model.steps)
        self._use_cuda_graph = model.use_cuda_graph
        torch, trt = self._torch, self._trt
        self.cuda_stream = self._cuda.Stream()  # prefill, the steps, the decoder
        self._encode_stream = self._cuda.Stream()  # the encoder: observe() runs while predict() runs
        self._capture_lock = threading.Lock()
        user_managed = trt.ExecutionContextAllocationStrategy.USER_MANAGED
        self._contexts = {g: e.create_execution_context(user_managed) for g, e in self._engines.items()}
        # The second step context: the steps alternate between two binding sets, addresses set once.
        self._steps = [self._contexts[DENOISE], self._engines[DENOISE].create_execution_context(user_managed)]
        # Activation memory: one block for the contexts that run one after another on cuda_stream, one
        # for the encoder.
        sizes = {g: e.device_memory_size_v2 for g, e in self._engines.items()}
        shared = torch.empty(shared_activation_bytes(sizes), dtype=torch.uint8, device=self.device)
        own = torch.empty(aligned_bytes(sizes[ENCODER]), dtype=torch.uint8, device=self.device)
        self._activations = (shared, own)
        users = [self._contexts[g] for g in SHARED_ACTIVATION_GRAPHS if g != DENOISE] + self._steps
        for ctx, block in [*((c, shared) for c in users), (self._contexts[ENCODER], own)]:
            ctx.set_device_memory(block.data_ptr(), block.numel())
        self.buffers = {b.name: torch.zeros(b.shape, dtype=getattr(torch, b.dtype), device=self.device)
                        for b in engine_buffers(self.plan)}  # fmt: skip
        # Every address once, as the plan binds them: each phase's context, the two step contexts.
        for name in ENGINE_PHASES:
            phase = self.plan.phase(name)
            contexts = self._steps if phase.graph == DENOISE else [self._contexts[phase.graph]]
            for ctx, binding in zip(contexts, phase.bindings, strict=True):
                for tensor, target in (*binding.inputs.items(), *binding.outputs.items()):
                    self._bind(ctx, f"{phase.graph}'s {tensor}", tensor, target.buffer)
        self._graph = None
        self._capture_failed = False

    def _bind(self, ctx, what: str, tensor: str, buffer: str) -> None:
        if not ctx.set_tensor_address(tensor, self.buffers[buffer].data_ptr()):
            raise EngineError(f"TensorRT refuses the address of {what} (buffer {buffer}): the engine's tensors "
                              "differ from the bundle's; rebuild the engines with vgpt-build")  # fmt: skip

    def _run(self, graph: str, stream) -> None:
        if not self._contexts[graph].execute_async_v3(stream.cuda_stream):
            raise EngineError(f"TensorRT failed to enqueue the {graph} engine")

    def _loop(self) -> None:
        for i in range(self.steps):
            if not self._steps[i & 1].execute_async_v3(self.cuda_stream.cuda_stream):
                raise EngineError("TensorRT failed to enqueue a denoising step")

    def _capture(self) -> None:
        """Warm up once (TensorRT allocates lazily on the first run), then capture the S steps,
        thread-locally and under the lock encode takes. A failed capture is ended (torch.cuda.graph's
        exit ends it, and torch's check of the failing call clears the CUDA error), and the steps then
        run without a graph."""
        cuda = self._cuda
        with cuda.stream(self.cuda_stream):
            self.buffers[self.io.step].zero_()
            self._loop()
        self.cuda_stream.synchronize()
        graph = cuda.CUDAGraph()
        try:
            # The outer stream context restores this thread's stream where a failed capture_end skips
            # the graph context's own restore.
            with self._capture_lock, cuda.stream(self.cuda_stream):
                with cuda.graph(graph, stream=self.cuda_stream, capture_error_mode="thread_local"):
                    self._loop()
        except (EngineError, RuntimeError) as err:
            self._capture_failed = True
            log.warning("CUDA graph capture of the denoising loop failed (%s); this stream runs the %d steps "
                        "without a graph", err, self.steps)  # fmt: skip
            return
        self._graph = graph

    @property
    def captured(self) -> bool:
        """Whether this stream replays a CUDA graph (False before the first clip and where capture failed)."""
        return self._graph is not None

    def launch(self) -> None:
        """The S steps of one clip on the stream, from step 0: the step index is reset on the device
        before the graph's replay (or the plain loop), so every clip indexes the schedule 0..S-1."""
        with self._cuda.stream(self.cuda_stream):
            self.buffers[self.io.step].zero_()
            if self._graph is not None:
                self._graph.replay()
            else:
                self._loop()

    def _upload(self, name: str, array: np.ndarray, stream) -> None:
        with self._cuda.stream(stream):
            self.buffers[name].copy_(self._torch.from_numpy(np.ascontiguousarray(array)), non_blocking=False)

    def _download(self, name: str, stream) -> np.ndarray:
        stream.synchronize()
        return self.buffers[name].to("cpu", copy=True).numpy()  # never a view of the buffer

    def encode(self, frame: np.ndarray) -> np.ndarray:
        with self._capture_lock:
            self._upload(self.io.frame, frame, self._encode_stream)
            self._run(ENCODER, self._encode_stream)
            return self._download(self.io.latent, self._encode_stream)

    def prefill(self, history: np.ndarray) -> None:
        self._upload(self.io.history, history, self.cuda_stream)
        self._run(PREFILL, self.cuda_stream)

    def denoise(self, z: np.ndarray) -> np.ndarray:
        # Host work per clip: copy the noise in, reset the step index, launch, copy the clip out.
        if self._use_cuda_graph and self._graph is None and not self._capture_failed:
            self._capture()
        self._upload(self.io.noise, z, self.cuda_stream)
        self.launch()
        return self._download(self.io.result, self.cuda_stream)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        self._upload(self.io.clip, latents, self.cuda_stream)
        self._run(DECODER, self.cuda_stream)
        return self._download(self.io.frames, self.cuda_stream)

    def close(self) -> None:
        """Release this stream: its graph and contexts, then its memory. The engines stay with the other
        streams over them (this one only drops its reference)."""
        self._graph = None
        self._contexts, self._steps = {}, []
        self.buffers, self._activations = {}, ()
        self._engines = {}
