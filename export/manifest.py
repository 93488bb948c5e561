"""Reading an export bundle back: its manifest, layouts and graph files, checked before use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgpt.config import Layout, ModelConfig
from vgpt.errors import VgptError
from vgpt.export.bundle import FORMAT, FORMAT_VERSION, MANIFEST, MANIFEST_HASH
from vgpt.export.spec import GraphSpec
from vgpt.integrity import canonical_sha256, verify_file


class BundleError(VgptError, RuntimeError):
    """A bundle that is incomplete, altered or made for something else; the message says how to rebuild."""


REBUILD = "re-export it with vgpt-export (add --force to replace the folder)"


@dataclass(frozen=True)
class LayoutEntry:
    name: str
    layout: Layout
    folder: Path
    graphs: dict[str, dict[str, Any]]

    def spec(self, graph: str) -> GraphSpec:
        return GraphSpec.from_dict(self.graphs[graph])

    def path(self, graph: str) -> Path:
        return self.folder / self.graphs[graph]["file"]


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict[str, Any]

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["model_config"])

    @property
    def layouts(self) -> list[LayoutEntry]:
        return [
            LayoutEntry(e["name"], Layout.from_dict(e["layout"]), self.root / e["name"], e["graphs"])
            for e in self.manifest["layouts"]
        ]

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


def load_bundle(path: str | Path, verify_hashes: bool = True) -> Bundle:
    """Read and check a bundle: format, the manifest's own hash, every graph file present with its
    recorded size and sha256 (hashed once per file and remembered by size and modification time,
    `vgpt.integrity`)."""
    root = find_manifest(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{root / MANIFEST} is not valid JSON ({err}); {REBUILD}") from err
    if not isinstance(manifest, dict):
        raise BundleError(f"{root / MANIFEST} holds no JSON object; {REBUILD}")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{root / MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{root} was exported by a newer vgpt (format {manifest['format_version']}); upgrade vgpt")
    _check_manifest_hash(root, manifest)
    _check_versions(root, manifest)
    bundle = Bundle(root, manifest)
    try:
        entries = bundle.layouts
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{root / MANIFEST} is malformed (no usable layouts: {err!r}); {REBUILD}") from err
    if not entries:
        raise BundleError(f"{root / MANIFEST} lists no layout; {REBUILD}")
    for entry in entries:
        for meta in entry.graphs.values():
            for name, info in meta["files"].items():
                file = entry.folder / name
                if not file.is_file():
                    raise BundleError(f"{file} is missing from the bundle; {REBUILD}")
                size = file.stat().st_size
                if size != info["bytes"]:
                    raise BundleError(
                        f"{file} has {size} bytes, the manifest says {info['bytes']}: truncated or replaced; {REBUILD}"
                    )
                if verify_hashes and not verify_file(file, info["sha256"]):
                    raise BundleError(f"{file} does not match the sha256 its manifest records: the file was changed "
                                      f"or damaged; {REBUILD}")  # fmt: skip
    return bundle


def _check_manifest_hash(root: Path, manifest: dict[str, Any]) -> None:
    recorded = manifest.get(MANIFEST_HASH)
    if recorded is None:
        if manifest.get("format_version", 0) >= 2:
            raise BundleError(f"{root / MANIFEST} lacks its {MANIFEST_HASH}; {REBUILD}")
        return  # format 1 bundles predate the field; their graph files are still checked
    if canonical_sha256(manifest, MANIFEST_HASH) != recorded:
        raise BundleError(f"{root / MANIFEST} was edited after the export (its content no longer matches its "
                          f"{MANIFEST_HASH}): the graphs bake in what it first said; {REBUILD}")  # fmt: skip


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _check_versions(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse a bundle verified with a newer ONNX Runtime than the installed one: its opset and fused
    operators may not load or may compute differently here."""
    recorded = manifest.get("versions", {}).get("onnxruntime")
    try:
        import onnxruntime
    except ImportError:
        return
    if recorded and _version_tuple(recorded) > _version_tuple(onnxruntime.__version__):
        raise BundleError(
            f"{root} was exported and verified with onnxruntime {recorded}, newer than the installed "
            f"{onnxruntime.__version__}: upgrade onnxruntime, or {REBUILD} here"
        )
