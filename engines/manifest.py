"""An engines folder's manifest (`vgpt.export.contract.EngineManifest`, `engines.json`): which graphs are
built into which plan files, the manifest written at the end of a build, and every check before TensorRT
loads a plan: this TensorRT and GPU, each plan's size and sha256, and the bundle graphs it was built from."""

from __future__ import annotations

from pathlib import Path

from vgpt.engines.settings import tensorrt_release
from vgpt.export.contract import (
    ENGINE_MANIFEST,
    BuildSettings,
    BundleManifest,
    EngineError,
    EngineFile,
    EngineManifest,
    GpuRecord,
)

# The engines vgpt-build builds and both TensorRT backends load, by plan file (vgpt.export.registry).
from vgpt.export.registry import ENGINE_GRAPHS, PLAN_FILES  # noqa: F401 - this module's names for them
from vgpt.untrusted import read_json_object


def engine_folder(source: str | Path) -> Path:
    """`model.plan` or the folder holding it and `engines.json`."""
    path = Path(source)
    folder = path.parent if path.suffix == ".plan" else path
    if not path.exists():
        raise EngineError(f"{path} does not exist: build engines with vgpt-build --bundle B --out {folder}")
    if not (folder / ENGINE_MANIFEST).is_file():
        raise EngineError(f"{folder} has no {ENGINE_MANIFEST}: build engines with vgpt-build --bundle B --out DIR")
    return folder


def check_engine_folder(source: str | Path, tensorrt_version: str, gpu_name: str, capability: tuple[int, int],
                        bundle: str | Path | None = None, verify_hash: bool = True):  # fmt: skip
    """What the TensorRT backend checks of an engines folder, in order, before TensorRT reads a plan:
    `engines.json`, that it was built by this TensorRT for this GPU, every plan's size and sha256, the
    bundle it was built from (`bundle`: where it is now; None: the folder engines.json names) and that the
    bundle's graphs are those the engines were built from. The C/C++ runtime's `check_engine_folder`
    (cpp/src/engines.hpp) checks the same in the same order; tests/cpp_runtime/tamper.py's engine cases
    hold both to it. Returns (the engines' manifest, the bundle layout's vgpt.export.manifest.LayoutEntry)."""
    from vgpt.export.manifest import load_bundle

    folder = engine_folder(source)
    manifest = read_engine_manifest(folder)
    check_engine_manifest(manifest, tensorrt_version, gpu_name, capability)
    check_plan_files(manifest, folder, verify_hash)
    entry = load_bundle(bundle or manifest.bundle).layout(manifest.layout)
    check_source_graphs(manifest, source_graph_hashes(entry, ENGINE_GRAPHS))
    return manifest, entry


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
    """Refuse engines built by another TensorRT release (major.minor.patch, compared as the C/C++ runtime
    compares them) or for another GPU: TensorRT plans are neither portable across versions nor across GPU
    models."""
    built = manifest.tensorrt_version
    release = tensorrt_release(built)
    if len(release) != 3 or release != tensorrt_release(tensorrt_version):
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
