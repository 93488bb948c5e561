"""The TensorRT backend: the engines of `vgpt-build`, every device buffer allocated once, and the whole
S-step denoising loop of a clip captured in one CUDA graph and replayed per clip.

Device memory, the stream and the CUDA graph come from PyTorch's CUDA runtime (a CUDA build of torch
is on every machine that has TensorRT and vgpt); TensorRT and CUDA are imported when this backend is
opened, never by `import vgpt`. The device buffers (`vgpt.engines.decisions.device_buffers`) bind the KV
cache once to both the prefill and the denoising engine, and give the steps two z and two step buffers to
alternate between, so the captured loop needs no host write: the step index advances on the device.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from vgpt.engines.build import gpu_identity, import_tensorrt
from vgpt.engines.decisions import (
    ENGINE_MANIFEST,
    EngineError,
    check_engine_manifest,
    check_plan_files,
    device_buffers,
    read_engine_manifest,
    result_buffer,
)
from vgpt.export.manifest import load_bundle
from vgpt.export.spec import DECODER, DENOISE, ENCODER, PREFILL
from vgpt.runtime.backends.base import Backend


def engine_folder(source: str | Path) -> Path:
    """`model.plan` or the folder holding it and `engines.json`."""
    path = Path(source)
    folder = path.parent if path.suffix == ".plan" else path
    if not path.exists():
        raise EngineError(f"{path} does not exist: build engines with vgpt-build --bundle B --out {folder}")
    if not (folder / ENGINE_MANIFEST).is_file():
        raise EngineError(f"{folder} has no {ENGINE_MANIFEST}: build engines with vgpt-build --bundle B --out DIR")
    return folder


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, source: str | Path, bundle: str | Path | None = None, use_cuda_graph: bool = True) -> None:
        import torch

        folder = engine_folder(source)  # a missing engine manifest is reported before a missing TensorRT
        trt = import_tensorrt()
        self.manifest = read_engine_manifest(folder)
        gpu, capability = gpu_identity()
        check_engine_manifest(self.manifest, trt.__version__, gpu, capability)
        check_plan_files(self.manifest, folder)
        exported = load_bundle(bundle or self.manifest.bundle)
        entry = exported.layout(self.manifest.layout)
        self.layout, self.steps = entry.layout, self.manifest.sampler.steps
        specs = {g: entry.spec(g) for g in (ENCODER, PREFILL, DENOISE, DECODER)}
        self.device_buffers = device_buffers(specs)
        self._torch = torch
        self.device = torch.device("cuda")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        self._engines = {}
        for graph in specs:
            data = (folder / self.manifest.plans[graph].file).read_bytes()
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise EngineError(f"TensorRT cannot deserialize {graph}'s engine; rebuild with vgpt-build")
            self._engines[graph] = engine
        self._use_cuda_graph = use_cuda_graph
        self._attach()

    def stream(self) -> TensorRTBackend:
        """Another stream over the same deserialized engines (read-only once built): its own execution
        contexts, device buffers, CUDA stream and captured graph."""
        other = copy.copy(self)
        other._attach()
        return other

    def _attach(self) -> None:
        """This stream's state: contexts with their tensor addresses set once, every buffer once on the
        device, a CUDA stream, and (on first use) the captured loop."""
        torch = self._torch
        self.cuda_stream = torch.cuda.Stream()
        self._contexts = {graph: engine.create_execution_context() for graph, engine in self._engines.items()}
        self.buffers = {b.name: torch.zeros(b.shape, dtype=getattr(torch, b.dtype), device=self.device)
                        for b in self.device_buffers.buffers}  # fmt: skip
        for b in self.device_buffers.buffers:
            for graph, tensor in b.bindings:
                if graph != DENOISE:
                    self._contexts[graph].set_tensor_address(tensor, self.buffers[b.name].data_ptr())
        # Two contexts for the two alternating step bindings: addresses set once, never again.
        self._steps = [self._contexts[DENOISE], self._engines[DENOISE].create_execution_context()]
        for ctx, names in zip(self._steps, self.device_buffers.step_bindings, strict=True):
            for tensor, buffer in names.items():
                ctx.set_tensor_address(tensor, self.buffers[buffer].data_ptr())
        self._out = result_buffer(self.steps)
        self._graph = None

    def _run(self, graph: str) -> None:
        if not self._contexts[graph].execute_async_v3(self.cuda_stream.cuda_stream):
            raise EngineError(f"TensorRT failed to enqueue the {graph} engine")

    def _loop(self) -> None:
        for i in range(self.steps):
            if not self._steps[i & 1].execute_async_v3(self.cuda_stream.cuda_stream):
                raise EngineError("TensorRT failed to enqueue a denoising step")

    def _capture(self) -> None:
        """Warm up once (TensorRT allocates lazily on the first run), then capture the S steps."""
        torch = self._torch
        with torch.cuda.stream(self.cuda_stream):
            self.buffers["step0"].zero_()
            self._loop()
        self.cuda_stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.cuda_stream):
            self._loop()
        self._graph = graph

    def _upload(self, name: str, array: np.ndarray) -> None:
        with self._torch.cuda.stream(self.cuda_stream):
            self.buffers[name].copy_(self._torch.from_numpy(np.ascontiguousarray(array)), non_blocking=False)

    def _download(self, name: str) -> np.ndarray:
        self.cuda_stream.synchronize()
        return self.buffers[name].cpu().numpy()

    def encode(self, frame: np.ndarray) -> np.ndarray:
        self._upload("frame", frame)
        self._run(ENCODER)
        return self._download("latent")

    def prefill(self, history: np.ndarray) -> None:
        self._upload("history", history)
        self._run(PREFILL)

    def denoise(self, z: np.ndarray) -> np.ndarray:
        # Host work per clip: copy the noise in, reset the step index, launch, copy the clip out.
        if self._use_cuda_graph and self._graph is None:
            self._capture()
        self._upload("z0", z)
        with self._torch.cuda.stream(self.cuda_stream):
            self.buffers["step0"].zero_()
            if self._graph is not None:
                self._graph.replay()
            else:
                self._loop()
        return self._download(self._out)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        self._upload("clip", latents)
        self._run(DECODER)
        return self._download("frames_out")

    def close(self) -> None:
        self._graph = None
        self._contexts.clear()
        self._steps = []
        self._engines.clear()
