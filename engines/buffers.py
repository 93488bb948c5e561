"""How a stream binds a bundle's graphs, read from the layout's binding plan (vgpt.export.registry.BindingPlan,
which vgpt-export writes into the manifest): which buffers a TensorRT stream allocates, the named buffers a
backend copies in and out of, and the activation block the execution contexts of a stream share. Both
TensorRT backends (Python, C/C++) and the ONNX Runtime backends bind by the same plan."""

from __future__ import annotations

from dataclasses import dataclass

from vgpt.export.registry import BindingPlan, BufferSpec
from vgpt.export.spec import DECODER, DENOISE, PREFILL

# The phases a TensorRT stream runs: the graphs vgpt-build builds (no TensorRT backend runs a rolling window).
ENGINE_PHASES = ("encode", "prefill", "denoise", "decode")


def engine_buffers(plan: BindingPlan) -> tuple[BufferSpec, ...]:
    """Every buffer a TensorRT stream allocates once: those its phases bind."""
    return plan.buffers_of(ENGINE_PHASES)


@dataclass(frozen=True)
class StreamIo:
    """The buffers a backend writes from and reads to the host, by the plan: the frame in and its latents out
    (encode), the history in (prefill), the noise in, the step index reset and the clip out (denoise), the
    clip in and the frames out (decode)."""

    frame: str
    latent: str
    history: str
    noise: str
    step: str
    result: str  # where the clip is after the sampler's S steps
    clip: str
    frames: str

    @classmethod
    def of(cls, plan: BindingPlan, steps: int) -> StreamIo:
        t = plan.target
        return cls(t("encode", "frames").buffer, t("encode", "latents").buffer, t("prefill", "history").buffer,
                   t("denoise", "z").buffer, t("denoise", "step").buffer, plan.result(steps),
                   t("decode", "latents").buffer, t("decode", "frames").buffer)  # fmt: skip


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
