"""The device buffers of a TensorRT stream, decided without TensorRT: every buffer allocated once, which
(graph, tensor) pairs each binds, the ping-pong pair of the denoising loop, and the activation block the
execution contexts of a stream share. Both TensorRT backends (Python, C/C++) bind by the same plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from vgpt.export.contract import (
    EngineError,
)
from vgpt.export.spec import DECODER, DENOISE, ENCODER, PREFILL, GraphSpec

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4}


@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str
    bindings: tuple[tuple[str, str], ...]  # (graph, tensor) pairs bound to this one allocation

    @property
    def nbytes(self) -> int:
        n = _BYTES[self.dtype]
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class DeviceBuffers:
    """Every device buffer a stream allocates once, and which (graph, tensor) pairs each is bound to."""

    buffers: tuple[Buffer, ...]
    # The denoising step's two bindings: even steps read set 0 and write set 1, odd steps the reverse,
    # so the loop (and a CUDA graph of it) never copies z or step between steps.
    step_bindings: tuple[dict[str, str], dict[str, str]] = field(default_factory=lambda: ({}, {}))

    @property
    def total_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def buffer(self, name: str) -> Buffer:
        return next(b for b in self.buffers if b.name == name)


def device_buffers(specs: dict[str, GraphSpec]) -> DeviceBuffers:
    """Every device buffer, allocated once: one KV cache written by prefill and read by every step;
    two z and two step buffers the steps alternate between; the codec's input and output."""
    enc, pre, den, dec = specs[ENCODER], specs[PREFILL], specs[DENOISE], specs[DECODER]
    kv = pre.tensor("kv_cache")
    if den.tensor("kv_cache").shape != kv.shape:
        raise EngineError("prefill writes a KV cache of another shape than the denoising step reads")
    z, step = den.tensor("z"), den.tensor("step")
    buffers = [
        Buffer("frame", enc.tensor("frames").shape, "float32", ((ENCODER, "frames"),)),
        Buffer("latent", enc.tensor("latents").shape, "float32", ((ENCODER, "latents"),)),
        Buffer("history", pre.tensor("history").shape, "float32", ((PREFILL, "history"),)),
        Buffer("kv", kv.shape, kv.dtype, ((PREFILL, "kv_cache"), (DENOISE, "kv_cache"))),
        Buffer("z0", z.shape, "float32", ((DENOISE, "z"),)),
        Buffer("z1", z.shape, "float32", ((DENOISE, "z_next"),)),
        Buffer("step0", step.shape, "int64", ((DENOISE, "step"),)),
        Buffer("step1", step.shape, "int64", ((DENOISE, "step_next"),)),
        Buffer("clip", dec.tensor("latents").shape, "float32", ((DECODER, "latents"),)),
        Buffer("frames_out", dec.tensor("frames").shape, "float32", ((DECODER, "frames"),)),
    ]
    steps = ({"z": "z0", "step": "step0", "z_next": "z1", "step_next": "step1", "kv_cache": "kv"},
             {"z": "z1", "step": "step1", "z_next": "z0", "step_next": "step0", "kv_cache": "kv"})  # fmt: skip
    return DeviceBuffers(tuple(buffers), steps)


# The graphs whose contexts run one after another on a stream's CUDA stream and so share one activation
# block: prefill, the two step contexts, the decoder. The encoder runs on its own CUDA stream (observe()
# encodes while predict() runs) and keeps its own block.
SHARED_ACTIVATION_GRAPHS = (PREFILL, DENOISE, DECODER)


ACTIVATION_ALIGNMENT = 256  # bytes: TensorRT's alignment for user-managed context memory


def aligned_bytes(n: int) -> int:
    """At least one alignment unit, rounded up to it (a zero-byte block would have no address)."""
    return max(1, -(-n // ACTIVATION_ALIGNMENT)) * ACTIVATION_ALIGNMENT


def shared_activation_bytes(sizes: dict[str, int]) -> int:
    """The one activation block of SHARED_ACTIVATION_GRAPHS: the largest engine's need (`sizes`: graph ->
    the engine's device memory size), aligned."""
    return aligned_bytes(max(sizes[g] for g in SHARED_ACTIVATION_GRAPHS))


def result_buffer(steps: int) -> str:
    """Where the clip is after `steps` alternating steps."""
    return "z0" if steps % 2 == 0 else "z1"
