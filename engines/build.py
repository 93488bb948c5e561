"""vgpt-build: TensorRT engines from an export bundle (TensorRT imported lazily, here only).

One engine per graph of one layout, written with a manifest (`engines.json`) that records the
TensorRT version, the GPU, the builder settings and the sha256 of each source ONNX graph. The whole
folder is written atomically: a failed build leaves nothing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from vgpt.atomic import atomic_dir, atomic_file
from vgpt.engines.manifest import ENGINE_GRAPHS, PLAN_FILES, engine_manifest
from vgpt.engines.settings import (
    build_settings,
    check_precision_supported,
    check_request,
    parse_tensorrt_version,
    profile_shapes,
)
from vgpt.export.contract import ENGINE_MANIFEST, BuildSettings, EngineError, EngineFile, EngineManifest
from vgpt.export.manifest import load_bundle
from vgpt.integrity import sha256_file

log = logging.getLogger(__name__)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as err:
        raise EngineError(
            "TensorRT is not installed: pip install tensorrt from NVIDIA's package index (x86-64 with CUDA 12/13), "
            f"or use the one JetPack ships on Jetson; see the README ({err})"
        ) from err
    parse_tensorrt_version(trt.__version__)  # refuses a version this code is not written for
    return trt


def gpu_identity() -> tuple[str, tuple[int, int]]:
    import torch

    if not torch.cuda.is_available():
        raise EngineError("no CUDA GPU is visible: TensorRT engines are built and run on the GPU they target")
    return torch.cuda.get_device_name(), tuple(torch.cuda.get_device_capability())


def _progress_monitor(trt):
    class Progress(trt.IProgressMonitor):
        """Logs each builder phase as it starts and ends (long builds of big models take minutes)."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._started: dict[str, float] = {}

        # TensorRT calls phase_start(phase_name, parent_phase, num_steps) positionally; parent_phase is
        # None for a top-level phase.
        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            self._started[phase_name] = time.perf_counter()
            log.info("  [trt] %s%s (%d steps)", "  " if parent_phase else "", phase_name, num_steps)

        def step_complete(self, phase_name, step) -> bool:
            return True  # keep building

        def phase_finish(self, phase_name) -> None:
            started = self._started.pop(phase_name, None)
            took = f" in {time.perf_counter() - started:.1f} s" if started is not None else ""
            log.info("  [trt] %s done%s", phase_name, took)

    return Progress()


def _set_timing_cache(config, cache_bytes: bytes, source: Path | None) -> None:
    """Give the builder the timing cache read from `source`, or a fresh one where TensorRT refuses it
    (written on another GPU or by another TensorRT: set_timing_cache returns False and leaves the config
    without a cache, whose serialize() would then fail after the build and lose the engine)."""
    for data in (cache_bytes, b"") if cache_bytes else (b"",):
        cache = config.create_timing_cache(data)  # None where TensorRT cannot read the bytes
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
        if data:
            log.warning("the timing cache %s is from another GPU or TensorRT version; starting a fresh one", source)
    raise EngineError("TensorRT refuses a fresh timing cache (see its log above)")


def build_engine(onnx_path: Path, settings: BuildSettings, shapes: dict, timing_cache: Path | None) -> bytes:
    """Parse one ONNX graph and build its serialized engine."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # STRONGLY_TYPED: required for it on TensorRT 10, accepted and ignored by 11 (always strongly typed).
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if settings.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT's ONNX parser rejects {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.optimization_level
    for flag in settings.flags:  # only TensorRT 10 builds have any (build_settings)
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    _set_timing_cache(config, cache_bytes, timing_cache)
    config.progress_monitor = _progress_monitor(trt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build {onnx_path} (see its log above)")
    if timing_cache is not None:
        with atomic_file(timing_cache) as f:
            f.write(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def build_bundle(bundle_dir: str | Path, out: str | Path, precision: str, layout: str | None = None,
                 optimization_level: int = 3, workspace_gib: float = 4.0, timing_cache: str | Path | None = None,
                 overwrite: bool = False) -> EngineManifest:  # fmt: skip
    """Build the engines of one layout of a bundle into `out`; returns the engine manifest."""
    # The user's own mistakes first (a missing bundle, a precision it cannot give), then this machine's.
    bundle = load_bundle(bundle_dir)
    entry = bundle.layout(layout)
    check_request(bundle.precision, bundle.manifest.dtype, precision, optimization_level)
    trt = import_tensorrt()
    settings = build_settings(bundle.precision, bundle.manifest.dtype, precision,
                              parse_tensorrt_version(trt.__version__), optimization_level,
                              int(workspace_gib * (1 << 30)))  # fmt: skip
    gpu, capability = gpu_identity()
    check_precision_supported(settings.precision, capability, gpu)
    cache = Path(timing_cache) if timing_cache else Path(out).with_name(Path(out).name + ".timing-cache")
    plans, sources = {}, {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for graph in ENGINE_GRAPHS:
            onnx_path = entry.path(graph)
            started = time.perf_counter()
            log.info("building %s (%s) from %s", PLAN_FILES[graph], settings.precision, onnx_path)
            data = build_engine(onnx_path, settings, profile_shapes(entry.spec(graph)), cache)
            path = tmp / PLAN_FILES[graph]
            path.write_bytes(data)
            plans[graph] = EngineFile(path.name, len(data), sha256_file(path))
            sources[graph] = sha256_file(onnx_path)
            log.info("  %s: %.1f MB in %.1f s", path.name, len(data) / 1e6, time.perf_counter() - started)
        manifest = engine_manifest(bundle.manifest, bundle_dir, entry.name, settings, trt.__version__, gpu,
                                   capability, plans, sources)  # fmt: skip
        (tmp / ENGINE_MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2))  # written last
    return manifest
