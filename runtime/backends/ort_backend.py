"""The ONNX Runtime backend: the bundle's graphs, every buffer allocated and bound once, by the layout's
binding plan (vgpt.export.registry.BindingPlan, written into the manifest by vgpt-export).

The KV cache is one buffer bound as the prefill graph's output and every denoising step's input. The
latent clip and the step index live in two pairs of buffers; step binding 0 reads pair 0 and writes pair 1,
binding 1 the reverse, so the loop is S calls of `run_with_iobinding` and nothing else: no allocation,
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

from vgpt.engines.buffers import StreamIo
from vgpt.errors import VgptError
from vgpt.export.manifest import Bundle, BundleError
from vgpt.export.registry import ONNXRUNTIME, PHASE_GROUPS, REQUIRED_PHASES, loaded_graphs
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, FRAME, PREFILL, RING
from vgpt.runtime.backends.base import Backend, Model

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


class OrtModel(Model):
    """A loaded bundle: one InferenceSession per graph, immutable after load. ONNX Runtime sessions take
    concurrent runs with separate bindings, so any number of streams (`OrtBackend`s) share one model."""

    name = "onnxruntime"

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
        self.plan = entry.bindings
        self.sessions, self.specs = {}, {}
        for graph in loaded_graphs(entry, ONNXRUNTIME):
            path = entry.path(graph)
            try:
                session = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception as err:  # ORT raises its own exception types for invalid or truncated files
                raise BundleError(f"ONNX Runtime cannot load {path}: {err}") from err
            check_started(self.providers, session.get_providers(), path)
            self.sessions[graph], self.specs[graph] = session, entry.spec(graph)

    def stream(self) -> OrtBackend:
        return OrtBackend.over(self)


class OrtBackend(Backend):
    """One stream over an `OrtModel`: its own buffers, KV cache and bindings, made by the layout's binding plan
    (vgpt.export.registry.BindingPlan). `OrtBackend(bundle)` loads the model and opens its first stream;
    `backend.stream()` opens another over the same sessions."""

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, layout: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool | None = None) -> None:  # fmt: skip
        self._attach(OrtModel(bundle, layout, threads, providers, spin))

    def _attach(self, model: OrtModel) -> None:
        self.model = model
        self.layout, self.steps, self.manifest, self.precision = (
            model.layout,
            model.steps,
            model.manifest,
            model.precision,
        )
        self.providers, self.placement, self.plan = model.providers, model.placement, model.plan
        self._sessions = model.sessions
        self.io = StreamIo.of(self.plan, self.steps)
        # Allocated and bound once: the phases every prediction runs. The rolling window's phases (append and
        # its second KV cache, or GPDiT's push and read over the ring) are bound on first use.
        self.buffers: dict[str, _Buffer] = {}
        self._bound = {name: self._bind(name) for name in REQUIRED_PHASES}
        self._steps_phase = "denoise"  # "denoise_alt" after an odd number of appends: the steps read the other cache
        self._appends = self._pushes = 0
        self._step_zero = np.zeros(self.buffers[self.io.step].shape, np.int64)

    @property
    def latent(self) -> _Buffer:
        """The encoder's output: one frame's latents [1, C, h, w]."""
        return self.buffers[self.io.latent]

    def _buffer(self, name: str) -> _Buffer:
        """The stream's buffer `name`, allocated the first time a phase binds it."""
        if name not in self.buffers:
            b = self.plan.buffer(name)
            self.buffers[name] = _Buffer(b.shape, _NP[b.dtype], self.placement)
        return self.buffers[name]

    def _bind(self, name: str) -> list:
        """The phase's bindings, each tensor bound to its buffer (or to one slot of it: a view at its offset, so
        the graph writes into that block of the buffer itself)."""
        phase = self.plan.phase(name)
        spec = self.model.specs[phase.graph]
        bindings = []
        for b in phase.bindings:
            binding = self._sessions[phase.graph].io_binding()
            for tensor, target in (*b.inputs.items(), *b.outputs.items()):
                buffer = self._buffer(target.buffer)
                is_input = tensor in b.inputs
                if target.slot is None:
                    (binding.bind_ortvalue_input if is_input else binding.bind_ortvalue_output)(tensor, buffer.value)
                    continue
                t = spec.tensor(tensor)
                address = buffer.value.data_ptr() + target.slot * t.nbytes
                bind = binding.bind_input if is_input else binding.bind_output
                bind(tensor, self.placement.device, self.placement.device_id, _NP[t.dtype], list(t.shape), address)
            bindings.append(binding)
        return bindings

    def _phase(self, name: str) -> list:
        if name not in self._bound:
            for group in PHASE_GROUPS:  # a group's phases are bound together
                if name in group:
                    self._bound.update({p: self._bind(p) for p in group})
        return self._bound[name]

    @property
    def exact_rolling(self) -> bool:
        return "push" in self.plan.phases

    @property
    def supports_rolling(self) -> bool:
        return "append" in self.plan.phases or self.exact_rolling

    def _run(self, graph: str, binding) -> None:
        self._sessions[graph].run_with_iobinding(binding)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        self.buffers[self.io.frame].write(frame)
        self._run(ENCODER, self._bound["encode"][0])
        return self.latent.read()

    def prefill(self, history: np.ndarray) -> None:
        self.buffers[self.io.history].write(history)
        self._run(PREFILL, self._bound["prefill"][0])
        self._steps_phase = "denoise"

    def append(self, latents: np.ndarray) -> None:
        if "append" not in self.plan.phases:
            raise BundleError("this bundle has no append.onnx (rolling mode); re-export it with this vgpt version")
        bindings = self._phase("append")
        self._buffer(self.plan.target("append", "latents").buffer).write(latents)
        # Binding 0 slides prefill's cache into the second, binding 1 back: the steps then read where it went.
        a = 0 if self._steps_phase == "denoise" else 1
        self._run(APPEND, bindings[a])
        self._steps_phase = "denoise_alt" if a == 0 else "denoise"

    def push(self, latents: np.ndarray) -> None:
        """Exact rolling: this frame's keys/values, computed alone, into the ring slot of the oldest frame."""
        if not self.exact_rolling:
            Backend.push(self, latents)
        bindings = self._phase("push")
        self._buffer(self.plan.target("push", "latents").buffer).write(latents)
        self._run(FRAME, bindings[self._pushes % len(bindings)])
        self._pushes += 1

    def read_window(self) -> None:
        if not self.exact_rolling:
            Backend.read_window(self)
        frames = self.layout.history_frames
        if self._pushes < frames:
            raise RuntimeError(f"the ring holds {self._pushes} of its {frames} frames: push the whole window first")
        (read,) = self._phase("read")
        self.buffers[self.plan.target("read", "oldest").buffer].write(np.array([self._pushes % frames], np.int64))
        self._run(RING, read)
        self._steps_phase = "denoise"

    def cache(self) -> np.ndarray:
        return self.buffers[self.plan.target(self._steps_phase, "kv_cache").buffer].read()

    def _start_loop(self, z: np.ndarray) -> list:
        self.buffers[self.io.noise].write(z)
        self.buffers[self.io.step].write(self._step_zero)
        return self._phase(self._steps_phase)

    def denoise(self, z: np.ndarray) -> np.ndarray:
        steps, session = self._start_loop(z), self._sessions[DENOISE]
        for i in range(self.steps):  # the hot loop: one bound run per step
            session.run_with_iobinding(steps[i & 1])
        return self.buffers[self.io.result].read()

    def decode(self, latents: np.ndarray) -> np.ndarray:
        self.buffers[self.io.clip].write(latents)
        self._run(DECODER, self._bound["decode"][0])
        return self.buffers[self.io.frames].read()

    def step_once(self) -> None:
        """One bound denoising step (for benchmarks)."""
        self._sessions[DENOISE].run_with_iobinding(self._phase(self._steps_phase)[0])

    def denoise_timed(self, z: np.ndarray) -> tuple[np.ndarray, float, float]:
        """`denoise` with every run call timed: (clip, seconds inside ONNX Runtime, loop seconds). The
        difference is the host overhead of the loop."""
        start = time.perf_counter()
        steps, session = self._start_loop(z), self._sessions[DENOISE]
        inside = 0.0
        for i in range(self.steps):
            t0 = time.perf_counter()
            session.run_with_iobinding(steps[i & 1])
            inside += time.perf_counter() - t0
        out = self.buffers[self.io.result].read()
        return out, inside, time.perf_counter() - start
