"""The decisions of an engine build that need no TensorRT: the precision path per TensorRT version (builder
flags on 10, strongly typed graphs on 11), the ONNX opset an export needs for a TensorRT version, profile
shapes and the FP8 hardware check. `vgpt.engines.build` carries them out."""

from __future__ import annotations

from vgpt.export.contract import (
    FP8_MIN_CAPABILITY,
    BuildSettings,
    EngineError,
)
from vgpt.export.spec import GraphSpec

ENGINE_PRECISIONS = ("fp16", "bf16", "fp8", "int8", "fp32")  # what vgpt-build can build


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


def tensorrt_release(text: str) -> tuple[int, ...]:
    """(major, minor, patch) of a TensorRT version string, build suffixes dropped ('10.7.0.post1' and '10.7.0'
    are one release, as the C/C++ runtime reads getInferLibVersion()); fewer numbers where the text has fewer."""
    numbers = []
    for piece in text.split(".")[:3]:
        digits = len(piece) - len(piece.lstrip("0123456789"))
        if not digits:
            break
        numbers.append(int(piece[:digits]))
    return tuple(numbers)


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
