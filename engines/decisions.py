"""Every decision of an engine build and of the TensorRT runtime that does not need TensorRT: the
precision path per TensorRT version (builder flags on 10, strongly typed graphs on 11), the ONNX opset
an export needs for a TensorRT version, profile shapes, the FP8 hardware check, the device buffers and
which of them alias, the activation block the contexts of a stream share, and the checks of an engine
manifest (`vgpt.export.contract.EngineManifest`). `vgpt.engines.build` and the TensorRT backend only
carry them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vgpt.export.contract import (
    ENGINE_MANIFEST,
    FP8_MIN_CAPABILITY,
    REQUIRED_GRAPHS,
    BuildSettings,
    BundleManifest,
    EngineError,
    EngineFile,
    EngineManifest,
    GpuRecord,
)
from vgpt.export.spec import DECODER, DENOISE, ENCODER, PREFILL, GraphSpec
from vgpt.untrusted import read_json_object

# The engines vgpt-build builds: the graphs both TensorRT backends load (the Python one and the C/C++
# runtime's kStreamGraphs), the contract's required ones. The rolling window's graphs (append; GPDiT's frame
# and ring) are not built: no TensorRT backend runs a rolling window (--kv-cache rolling runs on ONNX Runtime).
ENGINE_GRAPHS = REQUIRED_GRAPHS
# The denoising step's engine is the one users name: `vgpt-run --engine model.plan`.
PLAN_FILES = {DENOISE: "model.plan", PREFILL: "prefill.plan", ENCODER: "encoder.plan", DECODER: "decoder.plan"}
ENGINE_PRECISIONS = ("fp16", "bf16", "fp8", "int8", "fp32")  # what vgpt-build can build
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4}


# The weights' dtype an engine precision comes from when the graph decides the types (strongly typed).
PRECISION_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
# TensorRT versions this code is written for: 10.x from 10.1 (the V2 device-memory calls) and 11.x.
SUPPORTED_TENSORRT = ((10, 1), (12, 0))  # [from, to)
# The first TensorRT whose ONNX parser takes both of opset 23's fused ops (Attention: 10.14,
# RMSNormalization: 10.15; export/data/tensorrt_onnx_ops.json).
FUSED_OPSET_TENSORRT = (10, 15)


def parse_tensorrt_version(text: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string ('10.15.1', '11.4.0.post1'); refuses a version this
    code is not written for."""
    parts = text.split(".")
    try:
        version = int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as err:
        raise EngineError(f"cannot read TensorRT version {text!r}: expected MAJOR.MINOR[.PATCH]") from err
    low, high = SUPPORTED_TENSORRT
    if not low <= version < high:
        raise EngineError(f"TensorRT {text} is not supported: vgpt builds and runs engines with TensorRT "
                          f"{low[0]}.{low[1]} to {high[0] - 1}.x; install one of those")  # fmt: skip
    return version


def build_settings(bundle_precision: str, bundle_dtype: str, requested: str, tensorrt: tuple[int, int],
                   optimization_level: int = 3, workspace_bytes: int = 4 << 30) -> BuildSettings:  # fmt: skip
    """What to ask TensorRT for, given the bundle (precision, weights dtype), the requested engine
    precision and the TensorRT version.

    A quantized (fp8/int8) bundle is built strongly typed: its Q/DQ nodes decide every precision.
    TensorRT 10 builds fp16/bf16 from an fp32 graph with the FP16/BF16 builder flag (weakly typed: the
    builder picks per layer), or strongly typed from a graph already in that dtype. TensorRT 11 removed
    those flags and types every network strongly: an fp16/bf16 engine needs an fp16/bf16 graph
    (vgpt-export --dtype float16/bfloat16)."""
    check_request(bundle_precision, bundle_dtype, requested, optimization_level)
    if bundle_precision in ("fp8", "int8") or bundle_dtype == PRECISION_DTYPES[requested]:
        return BuildSettings(requested, True, (), optimization_level, workspace_bytes)  # the graph's types
    wanted = PRECISION_DTYPES[requested]
    if tensorrt[0] >= 11:
        raise EngineError(f"TensorRT {tensorrt[0]}.{tensorrt[1]} has no {requested.upper()} builder flag: every "
                          f"network is strongly typed and takes its precision from the graph. Export the bundle "
                          f"with vgpt-export --dtype {wanted} and build that")  # fmt: skip
    flags = {"fp16": ("FP16",), "bf16": ("BF16",)}[requested]
    return BuildSettings(requested, False, flags, optimization_level, workspace_bytes)


def check_request(bundle_precision: str, bundle_dtype: str, requested: str, optimization_level: int = 3) -> None:
    """The part of `build_settings` that needs no TensorRT: whether the bundle can give the requested
    precision at all (checked before TensorRT is imported, so a user's own mistake is reported first)."""
    if requested not in ENGINE_PRECISIONS:
        raise EngineError(f"precision {requested!r}: choose one of {ENGINE_PRECISIONS}")
    if not 0 <= optimization_level <= 5:
        raise EngineError(f"builder optimization level {optimization_level}: TensorRT takes 0..5")
    if bundle_precision in ("fp8", "int8"):
        if requested != bundle_precision:
            raise EngineError(f"the bundle holds {bundle_precision} Q/DQ graphs; build it with --precision "
                              f"{bundle_precision}, or export an fp32 bundle for {requested}")  # fmt: skip
        return
    if requested in ("fp8", "int8"):
        raise EngineError(f"{requested} engines need a quantized bundle: vgpt-export --{requested}, then build it")
    wanted = PRECISION_DTYPES[requested]
    if bundle_dtype not in ("float32", wanted):
        raise EngineError(f"the bundle's weights are {bundle_dtype}: build it with --precision "
                          f"{_precision_of(bundle_dtype)}, or export a bundle with --dtype {wanted} for "
                          f"{requested}")  # fmt: skip


def source_bundle(requested: str, tensorrt: tuple[int, int]) -> tuple[str, str]:
    """The bundle (precision, weights dtype) to export for an engine precision on this TensorRT: a Q/DQ
    bundle for fp8/int8; for fp16/bf16 an fp32 graph on TensorRT 10 (the builder flag picks per layer),
    a graph in that dtype on TensorRT 11 (no flags: the graph's types are the engine's)."""
    if requested in ("fp8", "int8"):
        return requested, "float32"
    if requested not in PRECISION_DTYPES:
        raise EngineError(f"precision {requested!r}: choose one of {ENGINE_PRECISIONS}")
    return "fp32", PRECISION_DTYPES[requested] if tensorrt[0] >= 11 else "float32"


def _precision_of(dtype: str) -> str:
    return next(p for p, d in PRECISION_DTYPES.items() if d == dtype)


def export_opset(tensorrt: tuple[int, int], precision: str = "fp32") -> int | None:
    """The opset to export a bundle at for this TensorRT's ONNX parser: 23 (fused Attention and
    RMSNormalization) from 10.15, 18 before. FP8 Q/DQ needs opset 19 or newer, which we export only
    as 23: None (no FP8 bundle this TensorRT parses) before 10.15."""
    if tuple(tensorrt) >= FUSED_OPSET_TENSORRT:
        return 23
    return None if precision == "fp8" else 18


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


def source_graph_hashes(entry, graphs) -> dict[str, str]:
    """graph -> the sha256 that a bundle layout (vgpt.export.manifest.LayoutEntry) records for that graph's
    ONNX file now: what vgpt-build hashed when it built the graph's engine from the same bundle."""
    return {g: entry.graphs[g].files[entry.graphs[g].spec.file].sha256 for g in graphs}


def check_source_graphs(manifest: EngineManifest, now: dict[str, str]) -> None:
    """Refuse engines that were not built from the graphs the bundle holds now (`now`:
    `source_graph_hashes`), as the C/C++ runtime refuses them: a re-exported bundle's engines are stale
    even where their own files are whole."""
    for graph, sha256 in now.items():
        if manifest.source_graphs_sha256.get(graph) != sha256:
            raise EngineError(f"the {graph} engine was not built from the {graph} graph that {manifest.bundle} holds "
                              "now (re-exported?): rebuild the engines with vgpt-build on this machine")  # fmt: skip


def check_plan_files(manifest: EngineManifest, folder: str | Path, verify_hash: bool = True) -> None:
    """Every engine present with its recorded size and sha256 (a truncated copy is refused before
    TensorRT sees it)."""
    for graph, engine in manifest.plans.items():
        engine.check(Path(folder), graph, verify_hash)
