"""Every decision of an engine build and of the TensorRT runtime that does not need TensorRT: profile
shapes, precision flags, the FP8 hardware check, the device buffers and which of them alias, and the
checks of an engine manifest (`vgpt.export.contract.EngineManifest`). `vgpt.engines.build` and the
TensorRT backend only carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vgpt.export.contract import (
    ENGINE_MANIFEST,
    FP8_MIN_CAPABILITY,
    BuildSettings,
    BundleManifest,
    EngineError,
    EngineFile,
    EngineManifest,
    GpuRecord,
)
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, PREFILL, GraphSpec
from vgpt.untrusted import read_json_object

# The denoising step's engine is the one users name: `vgpt-run --engine model.plan`.
PLAN_FILES = {DENOISE: "model.plan", PREFILL: "prefill.plan", ENCODER: "encoder.plan", DECODER: "decoder.plan",
              APPEND: "append.plan"}  # fmt: skip
ENGINE_PRECISIONS = ("fp16", "bf16", "fp8", "int8", "fp32")  # what vgpt-build can build
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4}


def build_settings(bundle_precision: str, requested: str, optimization_level: int = 3,
                   workspace_bytes: int = 4 << 30) -> BuildSettings:  # fmt: skip
    """What to ask TensorRT for, given the bundle's precision and the requested engine precision.
    A quantized (fp8/int8) bundle is built strongly typed: its Q/DQ nodes decide every precision.
    An fp32 bundle is built with the FP16 or BF16 flag (the builder picks per layer)."""
    if requested not in ENGINE_PRECISIONS:
        raise EngineError(f"precision {requested!r}: choose one of {ENGINE_PRECISIONS}")
    if not 0 <= optimization_level <= 5:
        raise EngineError(f"builder optimization level {optimization_level}: TensorRT takes 0..5")
    if bundle_precision in ("fp8", "int8"):
        if requested != bundle_precision:
            raise EngineError(f"the bundle holds {bundle_precision} Q/DQ graphs; build it with --precision "
                              f"{bundle_precision}, or export an fp32 bundle for {requested}")  # fmt: skip
        return BuildSettings(requested, True, (), optimization_level, workspace_bytes)
    if requested in ("fp8", "int8"):
        raise EngineError(f"{requested} engines need a quantized bundle: vgpt-export --{requested}, then build it")
    flags = {"fp16": ("FP16",), "bf16": ("BF16",), "fp32": ()}[requested]
    return BuildSettings(requested, False, flags, optimization_level, workspace_bytes)


def check_precision_supported(precision: str, capability: tuple[int, int], gpu_name: str) -> None:
    """Refuse FP8 where the GPU has no FP8 tensor cores (compute capability below 8.9: Ampere, Jetson Orin)."""
    if precision == "fp8" and tuple(capability) < FP8_MIN_CAPABILITY:
        raise EngineError(
            f"{gpu_name} (compute capability {capability[0]}.{capability[1]}) has no FP8: FP8 needs 8.9 or newer "
            "(Ada, Hopper, Blackwell). Export with --int8 and build --precision int8, or build an fp32 bundle "
            "with --precision fp16"
        )
    if precision == "bf16" and tuple(capability) < (8, 0):
        raise EngineError(f"{gpu_name} (compute capability {capability[0]}.{capability[1]}) has no BF16; use fp16")


def profile_shapes(spec: GraphSpec) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """One optimization profile per engine: min = opt = max = the layout's static shape."""
    return {t.name: (t.shape, t.shape, t.shape) for t in spec.inputs}


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

    def bound(self, graph: str, tensor: str) -> str:
        """The buffer a (graph, tensor) is bound to outside the denoising loop."""
        for b in self.buffers:
            if (graph, tensor) in b.bindings:
                return b.name
        raise KeyError(f"{graph}.{tensor} has no buffer")


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


def result_buffer(steps: int) -> str:
    """Where the clip is after `steps` alternating steps."""
    return "z0" if steps % 2 == 0 else "z1"


def engine_manifest(bundle: BundleManifest, bundle_dir: str | Path, layout: str, settings: BuildSettings,
                    tensorrt_version: str, gpu_name: str, capability: tuple[int, int], plans: dict[str, EngineFile],
                    sources: dict[str, str]) -> EngineManifest:  # fmt: skip
    return EngineManifest(
        tensorrt_version=tensorrt_version,
        gpu=GpuRecord(gpu_name, tuple(capability)),
        layout=layout,
        bundle_precision=bundle.precision,
        builder=settings,
        sampler=bundle.sampler,
        plans=plans,
        source_graphs_sha256=sources,
        bundle=str(Path(bundle_dir).resolve()),
    )


def read_engine_manifest(folder: str | Path) -> EngineManifest:
    """`engines.json` of an engine folder, checked field by field."""
    path = Path(folder) / ENGINE_MANIFEST
    return EngineManifest.from_dict(read_json_object(path, EngineError, "rebuild with vgpt-build"), str(path))


def check_engine_manifest(manifest: EngineManifest, tensorrt_version: str, gpu_name: str,
                          capability: tuple[int, int]) -> None:  # fmt: skip
    """Refuse engines built by another TensorRT version or for another GPU: TensorRT plans are neither
    portable across versions nor across GPU models."""
    built = manifest.tensorrt_version
    if built != tensorrt_version:
        raise EngineError(f"these engines were built with TensorRT {built}, this is TensorRT {tensorrt_version}: "
                          "rebuild them with vgpt-build on this machine")  # fmt: skip
    gpu = manifest.gpu
    if gpu.name != gpu_name or gpu.compute_capability != tuple(capability):
        raise EngineError(f"these engines were built for {gpu.name} (sm {list(gpu.compute_capability)}), this is "
                          f"{gpu_name} (sm {list(capability)}): rebuild them with vgpt-build on this GPU")  # fmt: skip


def check_plan_files(manifest: EngineManifest, folder: str | Path, verify_hash: bool = True) -> None:
    """Every engine present with its recorded size and sha256 (a truncated copy is refused before
    TensorRT sees it)."""
    for graph, engine in manifest.plans.items():
        engine.check(Path(folder), graph, verify_hash)
