"""The ONNX Runtime backend: the bundle's four graphs, every buffer allocated and bound once.

The KV cache is one buffer bound as the prefill graph's output and every denoising step's input. The
latent clip and the step index live in two pairs of buffers; binding A reads pair 0 and writes pair 1,
binding B the reverse, so the loop is S calls of `run_with_iobinding` and nothing else: no allocation,
no host copy, no arithmetic on the host.

Where the buffers live follows the execution provider: on the CPU they are numpy arrays that ONNX
Runtime reads and writes in place; with CUDA or TensorRT they are device OrtValues, so the only
host <-> device copies are a frame in (encode), the history in (prefill), the noise in and the clip out
(denoise) and the frames out (decode); a denoising step copies nothing.

Optimization level by precision: fp32, fp16 and INT8 graphs run at `ORT_ENABLE_ALL`, where the CPU
provider fuses each INT8 Q/DQ MatMul into an integer kernel (MatMulIntegerToFloat); FP8 Q/DQ graphs
run at the basic level, since FP8 is a TensorRT precision that the CPU provider only emulates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from vgpt.engines.buffers import device_buffers
from vgpt.errors import VgptError
from vgpt.export.manifest import Bundle, BundleError
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, FRAME, PREFILL, RING, GraphSpec
from vgpt.runtime.backends.base import Backend

log = logging.getLogger(__name__)

_NP = {"float32": np.float32, "float16": np.float16, "int64": np.int64}

# The names `vgpt-run --provider` takes, and ONNX Runtime's names for them.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
# Precisions whose Q/DQ the CPU provider runs only at the basic optimization level.
BASIC_LEVEL_PRECISIONS = ("fp8",)


class ProviderError(VgptError, RuntimeError):
    """An execution provider that this ONNX Runtime does not have, or that failed to start."""


def provider_names(requested: list[str] | None) -> list[str]:
    """ONNX Runtime provider names for what the user asked for (short names or ORT's own, in order of
    preference); None is the CPU. The CPU provider is appended after a GPU one because ONNX Runtime
    places the few nodes the GPU provider lacks (shape arithmetic) there; the buffers stay on the device."""
    if not requested:
        return [PROVIDERS["cpu"]]
    known = set(PROVIDERS.values())
    names = []
    for p in requested:
        name = PROVIDERS.get(p.lower(), p)
        if name not in known:
            raise ProviderError(f"execution provider {p!r}: choose one of {sorted(PROVIDERS)} (or {sorted(known)})")
        if name not in names:
            names.append(name)
    if names[0] != PROVIDERS["cpu"] and PROVIDERS["cpu"] not in names:
        names.append(PROVIDERS["cpu"])
    return names


def check_available(names: list[str], available: list[str]) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise ProviderError(
            f"ONNX Runtime here has no {', '.join(missing)} (it has {', '.join(available)}); install the "
            "onnxruntime-gpu package that matches your CUDA (and TensorRT) for cuda/tensorrt, or use --provider cpu"
        )


def check_started(requested: list[str], started: list[str], path) -> None:
    """ONNX Runtime falls back to the CPU when a GPU provider fails to start (missing CUDA libraries, say):
    refuse that instead of running silently on the CPU."""
    if requested[0] not in started:
        raise ProviderError(f"ONNX Runtime could not start {requested[0]} for {path} (it started {started}); see "
                            "its log above for the missing library, or use --provider cpu")  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """Where the bound buffers live: ONNX Runtime's device name and id ("cpu", 0 or "cuda", n)."""

    device: str
    device_id: int = 0

    @classmethod
    def for_providers(cls, names: list[str], device_id: int = 0) -> Placement:
        gpu = names[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])
        return cls("cuda", device_id) if gpu else cls("cpu", 0)

    @property
    def on_host(self) -> bool:
        return self.device == "cpu"


class _Buffer:
    """One bound tensor. On the host: a numpy array that an OrtValue wraps without copying, so the
    graph reads and writes the array itself. On a device: an OrtValue in device memory, written and
    read with explicit copies at the edges of the loop only."""

    def __init__(self, shape: tuple[int, ...], dtype, placement: Placement) -> None:
        import onnxruntime as ort

        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        if placement.on_host:
            self.host = np.zeros(shape, dtype)
            self.value = ort.OrtValue.ortvalue_from_numpy(self.host)
        else:
            self.host = None
            self.value = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, placement.device, placement.device_id)

    def write(self, array: np.ndarray) -> None:
        if self.host is not None:
            np.copyto(self.host, array)
        else:
            self.value.update_inplace(np.ascontiguousarray(array, self.dtype))

    def read(self) -> np.ndarray:
        return self.host.copy() if self.host is not None else self.value.numpy()


def session_options(precision: str, threads: int | None, spin: bool | None = None):
    """Session options for a bundle of this precision (see the module docstring for the level)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if spin is not None:
        # Spinning keeps the pool's threads awake between the S runs of the loop (lower latency per step,
        # a busy core while waiting); without it they sleep and are woken at every run.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    basic = precision in BASIC_LEVEL_PRECISIONS
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if basic else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    return options


class OrtModel:
    """A loaded bundle: one InferenceSession per graph, immutable after load. ONNX Runtime sessions take
    concurrent runs with separate bindings, so any number of streams (`OrtBackend`s) share one model."""

    def __init__(self, bundle: Bundle, layout: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool | None = None) -> None:  # fmt: skip
        import onnxruntime as ort

        entry = bundle.layout(layout)
        self.layout, self.steps = entry.layout, bundle.sampler.steps
        self.manifest = bundle.manifest
        self.precision = bundle.precision
        options = session_options(self.precision, threads, spin)
        self.providers = provider_names(providers)
        check_available(self.providers, ort.get_available_providers())
        if bundle.manifest.dtype == "bfloat16" and self.providers == ["CPUExecutionProvider"]:
            raise BundleError(f"{bundle.root} holds bfloat16 graphs, which ONNX Runtime's CPU provider cannot run "
                              "(no bf16 kernels): build TensorRT engines of it (vgpt-build --precision bf16), or "
                              "export --dtype float32 or float16 for ONNX Runtime")  # fmt: skip
        self.placement = Placement.for_providers(self.providers)
        self.sessions, self.specs = {}, {}
        graphs = [ENCODER, PREFILL, DENOISE, DECODER] + [g for g in (APPEND, FRAME, RING) if g in entry.graphs]
        for graph in graphs:
            path = entry.path(graph)
            try:
                session = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception as err:  # ORT raises its own exception types for invalid or truncated files
                raise BundleError(f"ONNX Runtime cannot load {path}: {err}") from err
            check_started(self.providers, session.get_providers(), path)
            self.sessions[graph], self.specs[graph] = session, entry.spec(graph)


class OrtBackend(Backend):
    """One stream over an `OrtModel`: its own buffers, KV cache and bindings. `OrtBackend(bundle)` loads
    the model and opens its first stream; `backend.stream()` opens another over the same sessions."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, layout: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool | None = None) -> None:  # fmt: skip
        self._attach(OrtModel(bundle, layout, threads, providers, spin))

    @classmethod
    def over(cls, model: OrtModel) -> OrtBackend:
        """A stream over a loaded model."""
        backend = cls.__new__(cls)
        backend._attach(model)
        return backend

    def stream(self) -> OrtBackend:
        return OrtBackend.over(self.model)

    def _attach(self, model: OrtModel) -> None:
        self.model = model
        self.layout, self.steps, self.manifest, self.precision = (
            model.layout,
            model.steps,
            model.manifest,
            model.precision,
        )
        self.providers, self.placement = model.providers, model.placement
        self._sessions, self._specs = model.sessions, model.specs
        self._allocate()

    def _buffer(self, spec: GraphSpec, name: str) -> _Buffer:
        t = spec.tensor(name)
        return _Buffer(t.shape, _NP[t.dtype], self.placement)

    def _bind(self, graph: str, tensors: dict[str, _Buffer]):
        """A binding of `graph`'s tensors (inputs and outputs, told apart by the graph's spec) to buffers."""
        binding = self._sessions[graph].io_binding()
        inputs = {t.name for t in self._specs[graph].inputs}
        for name, buffer in tensors.items():
            bind = binding.bind_ortvalue_input if name in inputs else binding.bind_ortvalue_output
            bind(name, buffer.value)
        return binding

    def _allocate(self) -> None:
        """Every device buffer that the TensorRT backend also binds (`device_buffers`), allocated once
        and bound once: one KV cache written by prefill and read by every step, two z and two step buffers
        the steps alternate between, the codec's input and output."""
        device = device_buffers(self._specs)
        buffers = {b.name: _Buffer(b.shape, _NP[b.dtype], self.placement) for b in device.buffers}
        self.frame, self.latent, self.history = buffers["frame"], buffers["latent"], buffers["history"]
        self.clip, self.frames_out = buffers["clip"], buffers["frames_out"]
        # Rolling mode adds a second KV cache and alternates (append reads one and writes the other); it
        # is allocated on first use only.
        self.kv = [buffers["kv"]]
        self._kv_index = 0
        self.z, self.step = [buffers["z0"], buffers["z1"]], [buffers["step0"], buffers["step1"]]
        self._device, self._buffers = device, buffers
        self._bindings = {
            graph: self._bind(graph, {tensor: buffers[b.name] for b in device.buffers for g, tensor in b.bindings
                                      if g == graph})
            for graph in (ENCODER, PREFILL, DECODER)
        }  # fmt: skip
        self._steps = [self._step_bindings(0)]
        self._step_zero = np.zeros(self.step[0].shape, np.int64)
        if APPEND in self._sessions:
            self.latent_in = self._buffer(self._specs[APPEND], "latents")
        self._ring: _Ring | None = None

    @property
    def exact_rolling(self) -> bool:
        return RING in self._sessions

    def _step_bindings(self, kv: int) -> list:
        """The two alternating step bindings of the device buffers, reading KV cache `kv`."""
        return [self._bind(DENOISE, {tensor: self.kv[kv] if name == "kv" else self._buffers[name]
                                     for tensor, name in names.items()})
                for names in self._device.step_bindings]  # fmt: skip

    @property
    def supports_rolling(self) -> bool:
        return APPEND in self._sessions or self.exact_rolling

    def push(self, latents: np.ndarray) -> None:
        if self._ring is None:
            self._ring = _Ring(self)
        self._ring.push(latents)

    def read_window(self) -> None:
        if self._ring is None:
            raise RuntimeError("read_window() before push(): the ring holds no frame")
        self._ring.read()
        self._kv_index = 0

    def _run(self, graph: str, binding) -> None:
        self._sessions[graph].run_with_iobinding(binding)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        self.frame.write(frame)
        self._run(ENCODER, self._bindings[ENCODER])
        return self.latent.read()

    def prefill(self, history: np.ndarray) -> None:
        self.history.write(history)
        self._run(PREFILL, self._bindings[PREFILL])
        self._kv_index = 0

    def append(self, latents: np.ndarray) -> None:
        if not self.supports_rolling:
            raise BundleError("this bundle has no append.onnx (rolling mode); re-export it with this vgpt version")
        if len(self.kv) == 1:
            self.kv.append(self._buffer(self._specs[PREFILL], "kv_cache"))
            self._steps.append(self._step_bindings(1))
            self._appends = [
                self._bind(APPEND, {"latents": self.latent_in, "kv_cache": self.kv[a], "kv_next": self.kv[1 - a]})
                for a in (0, 1)
            ]
        self.latent_in.write(latents)
        self._run(APPEND, self._appends[self._kv_index])
        self._kv_index = 1 - self._kv_index

    def cache(self) -> np.ndarray:
        return self.kv[self._kv_index].read()

    def _start_loop(self, z: np.ndarray) -> None:
        self.z[0].write(z)
        self.step[0].write(self._step_zero)

    def denoise(self, z: np.ndarray) -> np.ndarray:
        self._start_loop(z)
        session, steps = self._sessions[DENOISE], self._steps[self._kv_index]
        for i in range(self.steps):  # the hot loop: one bound run per step
            session.run_with_iobinding(steps[i & 1])
        return self.z[self.steps & 1].read()

    def decode(self, latents: np.ndarray) -> np.ndarray:
        self.clip.write(latents)
        self._run(DECODER, self._bindings[DECODER])
        return self.frames_out.read()

    def step_once(self) -> None:
        """One bound denoising step (for benchmarks)."""
        self._sessions[DENOISE].run_with_iobinding(self._steps[self._kv_index][0])

    def denoise_timed(self, z: np.ndarray) -> tuple[np.ndarray, float, float]:
        """`denoise` with every run call timed: (clip, seconds inside ONNX Runtime, loop seconds). The
        difference is the host overhead of the loop."""
        start = time.perf_counter()
        self._start_loop(z)
        session, steps = self._sessions[DENOISE], self._steps[self._kv_index]
        inside = 0.0
        for i in range(self.steps):
            t0 = time.perf_counter()
            session.run_with_iobinding(steps[i & 1])
            inside += time.perf_counter() - t0
        out = self.z[self.steps & 1].read()
        return out, inside, time.perf_counter() - start


class _Ring:
    """GPDiT's exact rolling window over a stream's buffers (export/gpdit_graphs.py): a ring of M slots, one
    frame's keys/values each, slot-major so that each slot is one contiguous block. The frame graph writes a
    new frame's straight into the slot of the oldest (one binding per slot, its output bound at that slot's
    address: no copy), and the ring graph reads the window into the KV cache that the denoising steps read."""

    def __init__(self, backend: OrtBackend) -> None:
        spec = backend._specs[RING].tensor("ring")
        self.backend, self.frames = backend, spec.shape[0]
        self.ring = backend._buffer(backend._specs[RING], "ring")
        self.latents = backend._buffer(backend._specs[FRAME], "latents")
        self.oldest = backend._buffer(backend._specs[RING], "oldest")
        self.count = 0  # frames pushed
        slot = backend._specs[FRAME].tensor("frame_kv")
        base, size = self.ring.value.data_ptr(), slot.nbytes
        element = _NP[slot.dtype]
        self._pushes = []
        for s in range(self.frames):
            binding = backend._sessions[FRAME].io_binding()
            binding.bind_ortvalue_input("latents", self.latents.value)
            binding.bind_output("frame_kv", backend.placement.device, backend.placement.device_id, element,
                                list(slot.shape), base + s * size)  # fmt: skip
            self._pushes.append(binding)
        self._read = backend._bind(RING, {"ring": self.ring, "oldest": self.oldest, "kv_cache": backend.kv[0]})

    def push(self, latents: np.ndarray) -> None:
        self.latents.write(latents)
        self.backend._run(FRAME, self._pushes[self.count % self.frames])
        self.count += 1

    def read(self) -> None:
        if self.count < self.frames:
            raise RuntimeError(f"the ring holds {self.count} of its {self.frames} frames: push the whole window first")
        self.oldest.write(np.array([self.count % self.frames], np.int64))
        self.backend._run(RING, self._read)
