"""The ONNX Runtime backend: the bundle's four graphs, every buffer allocated and bound once.

The KV cache is one array bound as the prefill graph's output and every denoising step's input. The
latent clip and the step index live in two pairs of buffers; binding A reads pair 0 and writes pair 1,
binding B the reverse, so the loop is S calls of `run_with_iobinding` and nothing else: no allocation,
no host copy, no arithmetic on the host.
"""

from __future__ import annotations

import logging

import numpy as np

from vgpt.calibration.policy import PRECISIONS
from vgpt.export.manifest import Bundle, BundleError
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, PREFILL, GraphSpec
from vgpt.runtime.backends.base import Backend

log = logging.getLogger(__name__)

_NP = {"float32": np.float32, "float16": np.float16, "int64": np.int64}


def _providers(requested: list[str] | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return ["CPUExecutionProvider"]
    missing = [p for p in requested if p not in available]
    if missing:
        raise BundleError(f"ONNX Runtime providers {missing} are not available here (available: {available})")
    return requested


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, layout: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None) -> None:  # fmt: skip
        import onnxruntime as ort

        entry = bundle.layout(layout)
        self.layout, self.steps = entry.layout, int(bundle.manifest["sampler"]["steps"])
        self.manifest = bundle.manifest
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # Q/DQ graphs with FP8 run on the CPU only at the basic optimisation level.
        quantized = bundle.manifest.get("precision") in PRECISIONS
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if quantized else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        self.providers = _providers(providers)
        self._sessions, self._specs = {}, {}
        graphs = [ENCODER, PREFILL, DENOISE, DECODER] + ([APPEND] if APPEND in entry.graphs else [])
        for graph in graphs:
            path = entry.path(graph)
            try:
                self._sessions[graph] = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception as err:  # ORT raises its own exception types for invalid or truncated files
                raise BundleError(f"ONNX Runtime cannot load {path}: {err}") from err
            self._specs[graph] = entry.spec(graph)
        self._allocate()

    def _buffer(self, spec: GraphSpec, name: str) -> np.ndarray:
        t = spec.tensor(name)
        return np.zeros(t.shape, _NP[t.dtype])

    def _bind(self, graph: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        import onnxruntime as ort

        binding = self._sessions[graph].io_binding()
        for name, array in inputs.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in outputs.items():
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(array))
        return binding

    def _allocate(self) -> None:
        enc, pre, den, dec = (self._specs[g] for g in (ENCODER, PREFILL, DENOISE, DECODER))
        self.frame = self._buffer(enc, "frames")
        self.latent = self._buffer(enc, "latents")
        self.history = self._buffer(pre, "history")
        # The KV cache: prefill's output and every step's input. Rolling mode adds a second buffer and
        # alternates (append reads one and writes the other); it is allocated on first use only.
        self.kv = [self._buffer(pre, "kv_cache")]
        self._kv_index = 0
        self.z = [self._buffer(den, "z"), self._buffer(den, "z_next")]
        self.step = [self._buffer(den, "step"), self._buffer(den, "step_next")]
        self.clip = self._buffer(dec, "latents")
        self.frames_out = self._buffer(dec, "frames")
        if self.supports_rolling:
            self.latent_in = self._buffer(self._specs[APPEND], "latents")
        self._bindings = {
            ENCODER: self._bind(ENCODER, {"frames": self.frame}, {"latents": self.latent}),
            PREFILL: self._bind(PREFILL, {"history": self.history}, {"kv_cache": self.kv[0]}),
            DECODER: self._bind(DECODER, {"latents": self.clip}, {"frames": self.frames_out}),
        }
        self._steps = [self._step_bindings(0)]

    def _step_bindings(self, kv: int) -> list:
        return [
            self._bind(DENOISE, {"z": self.z[a], "kv_cache": self.kv[kv], "step": self.step[a]},
                       {"z_next": self.z[1 - a], "step_next": self.step[1 - a]})
            for a in (0, 1)
        ]  # fmt: skip

    @property
    def supports_rolling(self) -> bool:
        return APPEND in self._sessions

    def _run(self, graph: str, binding) -> None:
        self._sessions[graph].run_with_iobinding(binding)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        np.copyto(self.frame, frame)
        self._run(ENCODER, self._bindings[ENCODER])
        return self.latent.copy()

    def prefill(self, history: np.ndarray) -> None:
        np.copyto(self.history, history)
        self._run(PREFILL, self._bindings[PREFILL])
        self._kv_index = 0

    def append(self, latents: np.ndarray) -> None:
        if not self.supports_rolling:
            raise BundleError("this bundle has no append.onnx (rolling mode); re-export it with this vgpt version")
        if len(self.kv) == 1:
            self.kv.append(np.zeros_like(self.kv[0]))
            self._steps.append(self._step_bindings(1))
            self._appends = [self._bind(APPEND, {"latents": self.latent_in, "kv_cache": self.kv[a]},
                                        {"kv_next": self.kv[1 - a]}) for a in (0, 1)]  # fmt: skip
        np.copyto(self.latent_in, latents)
        self._run(APPEND, self._appends[self._kv_index])
        self._kv_index = 1 - self._kv_index

    def denoise(self, z: np.ndarray) -> np.ndarray:
        np.copyto(self.z[0], z)
        self.step[0][0] = 0
        session, steps = self._sessions[DENOISE], self._steps[self._kv_index]
        for i in range(self.steps):  # the hot loop: one bound run per step
            session.run_with_iobinding(steps[i & 1])
        return self.z[self.steps & 1].copy()

    def decode(self, latents: np.ndarray) -> np.ndarray:
        np.copyto(self.clip, latents)
        self._run(DECODER, self._bindings[DECODER])
        return self.frames_out.copy()

    def step_once(self) -> None:
        """One bound denoising step (for benchmarks)."""
        self._sessions[DENOISE].run_with_iobinding(self._steps[self._kv_index][0])

    def denoise_timed(self, z: np.ndarray) -> tuple[np.ndarray, float, float]:
        """`denoise` with every run call timed: (clip, seconds inside ONNX Runtime, loop seconds). The
        difference is the host overhead of the loop."""
        import time

        start = time.perf_counter()
        np.copyto(self.z[0], z)
        self.step[0][0] = 0
        session, steps = self._sessions[DENOISE], self._steps[self._kv_index]
        inside = 0.0
        for i in range(self.steps):
            t0 = time.perf_counter()
            session.run_with_iobinding(steps[i & 1])
            inside += time.perf_counter() - t0
        out = self.z[self.steps & 1].copy()
        return out, inside, time.perf_counter() - start
