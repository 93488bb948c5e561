"""Reading an export bundle back: its manifest, layouts and graph files, checked before use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vgpt.config import ModelConfig, SamplerConfig
from vgpt.export.contract import MANIFEST, REBUILD, BundleError, BundleManifest, GraphRecord
from vgpt.export.registry import BindingPlan
from vgpt.export.signing import check_signature
from vgpt.export.spec import GraphSpec
from vgpt.layout import Layout
from vgpt.untrusted import inside, parse_json_object, read_document


@dataclass(frozen=True)
class LayoutEntry:
    name: str
    layout: Layout
    folder: Path
    graphs: dict[str, GraphRecord]
    bindings: BindingPlan  # how a stream binds these graphs (vgpt.export.registry)

    def spec(self, graph: str) -> GraphSpec:
        return self.graphs[graph].spec

    def path(self, graph: str) -> Path:
        return self.folder / self.graphs[graph].spec.file


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: BundleManifest

    @property
    def model_config(self) -> ModelConfig:
        return self.manifest.model_config

    @property
    def sampler(self) -> SamplerConfig:
        return self.manifest.sampler.config

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def quantized(self) -> bool:
        return self.manifest.quantized

    @property
    def layouts(self) -> list[LayoutEntry]:
        return [LayoutEntry(e.name, e.layout, self.root / e.name, e.graphs, e.bindings) for e in self.manifest.layouts]

    def layout(self, name: str | None = None) -> LayoutEntry:
        entries = self.layouts
        if name is None:
            return entries[0]
        for e in entries:
            if e.name == name:
                return e
        raise BundleError(f"{self.root} has no layout {name!r}; it has {[e.name for e in entries]}")


def find_manifest(path: str | Path) -> Path:
    """The bundle folder for a bundle folder, a layout folder, or a graph file inside one."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p} does not exist")
    for candidate in (p, p.parent, p.parent.parent) if p.is_file() else (p, p.parent):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise BundleError(f"no {MANIFEST} at or above {p}: the export is incomplete or this is not a bundle; {REBUILD}")


def read_manifest(root: Path, trusted_keys: Sequence[str | Path] = ()) -> BundleManifest:
    """The manifest of the bundle folder `root`, checked field by field (no graph file is read); with
    `trusted_keys`, the very bytes parsed are first checked against the bundle's signature."""
    raw = read_document(root / MANIFEST, BundleError, REBUILD)
    if trusted_keys:
        check_signature(root, trusted_keys, raw)
    return BundleManifest.from_dict(parse_json_object(raw, root / MANIFEST, BundleError, REBUILD), str(root / MANIFEST))


def load_bundle(path: str | Path, verify_hashes: bool = True, trust_cache: bool = False,
                trusted_keys: Sequence[str | Path] = ()) -> Bundle:  # fmt: skip
    """Read and check a bundle: with `trusted_keys`, its signature by one of them (vgpt.export.signing);
    its manifest (format, its own hash, every field), then every graph file, a plain name inside its
    layout's folder, present with its recorded size and sha256 (hashed at every load; with
    `trust_cache`, remembered since the file's last write, `vgpt.integrity`)."""
    root = find_manifest(path)
    manifest = read_manifest(root, trusted_keys)
    _check_versions(root, manifest)
    bundle = Bundle(root, manifest)
    for entry in bundle.layouts:
        folder = inside(root, entry.name, BundleError, f"{root / MANIFEST}: layout")
        for graph_name, graph in entry.graphs.items():
            for name, record in graph.files.items():
                path = inside(folder, name, BundleError, f"{root / MANIFEST}: {entry.name}.{graph_name}.files")
                record.check(path, BundleError, REBUILD, verify_hashes, trust_cache)
    return bundle


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _check_versions(root: Path, manifest: BundleManifest) -> None:
    """Refuse a bundle verified with a newer ONNX Runtime than the installed one: its opset and fused
    operators may not load or may compute differently here."""
    recorded = manifest.versions.get("onnxruntime")
    try:
        import onnxruntime
    except ImportError:
        return
    if recorded and _version_tuple(recorded) > _version_tuple(onnxruntime.__version__):
        raise BundleError(
            f"{root} was exported and verified with onnxruntime {recorded}, newer than the installed "
            f"{onnxruntime.__version__}: upgrade onnxruntime, or {REBUILD} here"
        )
