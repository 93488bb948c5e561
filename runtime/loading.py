"""Opening a backend from what the user names: a bundle, an engines folder, a checkpoint, or the bundled
default. The path is probed once (`resolve_source`: a typed `ModelSource`), and every option travels as
one value (`LoadOptions`), down to the backend of the layout asked for.

ONNX Runtime needs a bundle. Given a checkpoint (or nothing: the bundled default), the runtime exports
one on first use into a cache folder keyed by everything the export depends on, and reuses it only
while its manifest still records the same weights, codec, layout, schedule and library versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import vgpt
from vgpt.cache import LOCK_SUFFIX
from vgpt.config import SamplerConfig
from vgpt.default_model import named_model, resolve_checkpoint
from vgpt.errors import is_storage_error
from vgpt.export.contract import ENGINE_MANIFEST, FORMAT, FORMAT_VERSION, MANIFEST, BundleError
from vgpt.export.manifest import Bundle, find_manifest, load_bundle, read_manifest
from vgpt.integrity import cache_dir
from vgpt.layout import Layout, LayoutRequest
from vgpt.runtime.backends.base import Backend, Model
from vgpt.runtime.backends.ort_backend import OrtModel
from vgpt.runtime.backends.trt_backend import TensorRTModel
from vgpt.untrusted import read_json_object

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "torch", "tensorrt")


@dataclass(frozen=True)
class ModelSource:
    """What a user named as the model, probed once: an export bundle (`path`: its folder), a vgpt-build
    engines folder or plan, or a checkpoint (a checkpoint folder, a training run, a folder laid out like
    the bundled model; `path` None: the bundled default)."""

    kind: Literal["bundle", "engines", "checkpoint"]
    path: Path | None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else "the bundled model"


def resolve_source(source: str | Path | ModelSource | None, model: str | None = None) -> ModelSource:
    """`source` (and `--model NAME`, vgpt.default_model.BUNDLED_MODELS) as a `ModelSource`."""
    if isinstance(source, ModelSource):
        if model is not None:
            raise BundleError(f"model={model!r} picks a bundled model by name; {source} is already resolved")
        return source
    source = named_model(source, model)
    if source is None:
        return ModelSource("checkpoint", None)
    if _is_engine(source):
        return ModelSource("engines", Path(source))
    if _is_bundle(source):
        return ModelSource("bundle", find_manifest(source))
    return ModelSource("checkpoint", Path(source))


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model (see vgpt.runtime.predictor.load_model, which takes these as keywords).

    `layout`: which of a bundle's layouts (its name, or M,G[,HxW] as a `LayoutRequest`); for a checkpoint, the
    layout to export (or, with the torch backend, to run) instead of its defaults'. `steps`, `guidance`: a
    checkpoint's sampler (a bundle's must agree: they are baked in). `providers`: ONNX Runtime's execution
    providers in order of preference. `trust_cache`, `trusted_keys`: vgpt.integrity, vgpt.export.signing."""

    backend: str = "onnxruntime"
    threads: int | None = None
    steps: int | None = None
    guidance: float | None = None
    codec: str | Path | None = None
    providers: tuple[str, ...] | None = None
    layout: str | LayoutRequest | None = None
    trust_cache: bool = False
    trusted_keys: tuple[str | Path, ...] = ()
    model: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BundleError(f"backend {self.backend!r}: choose one of {BACKENDS}")
        if self.providers and self.backend != "onnxruntime":
            raise BundleError(f"execution providers {list(self.providers)} are ONNX Runtime's; the {self.backend} "
                              "backend takes none")  # fmt: skip
        for name in ("providers", "trusted_keys"):  # lists from a caller become tuples: the value is hashable
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))


def pick_layout(bundle, layout: str | LayoutRequest | None) -> str | None:
    """The name of the bundle's layout that `layout` asks for (None: its first); an error lists the ones
    it has."""
    if layout is None or isinstance(layout, str):
        return bundle.layout(layout).name
    found = [entry.name for entry in bundle.layouts if layout.matches(entry.layout)]
    if not found:
        have = ", ".join(f"{e.name} ({_spell(e.layout)})" for e in bundle.layouts)
        raise BundleError(f"{bundle.root} has no layout {layout}; it has {have}: re-export with vgpt-export --layout "
                          f"{layout} to add it")  # fmt: skip
    if len(found) > 1:
        raise BundleError(f"{bundle.root}: layout {layout} matches {found}; give the frame size too (M,G,HxW)")
    return found[0]


def _manifest_only(root: Path) -> Bundle:
    """A bundle's manifest, checked field by field, without hashing its graph files: for a look at its
    layouts before the load that checks them (`load_bundle`)."""
    return Bundle(root, read_manifest(root))


def _spell(layout: Layout) -> str:
    return f"{layout.history_frames},{layout.clip_frames},{layout.latent_height}x{layout.latent_width}"


def _checkpoint_layout(layout: str | LayoutRequest | None, defaults, config, source) -> Layout:
    """A checkpoint's layout: its defaults', or the one asked for (a name is a bundle's, not a checkpoint's)."""
    if isinstance(layout, str):
        raise BundleError(f"layout {layout!r} names one of a bundle's layouts, and {source} is a checkpoint: ask "
                          "for M,G[,HxW] instead (a LayoutRequest; vgpt-run --layout 4,4)")  # fmt: skip
    if layout is None:
        return defaults.layout(config)
    return layout.resolve(config, (defaults.height, defaults.width))


def cache_root() -> Path:
    return cache_dir() / "exports"


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"vgpt": vgpt.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}  # fmt: skip


def cached_export(
    source: str | Path | None,
    steps: int | None,
    guidance: float | None,
    codec_source: str | Path | None = None,
    trust_cache: bool = False,
    layout: str | LayoutRequest | None = None,
) -> Path:
    """Export the checkpoint (or the bundled default) once into the cache; returns the bundle folder.
    `trust_cache`: reuse the remembered verdicts on its graph files (vgpt.integrity); `layout`: instead of
    the checkpoint's defaults'. A warm start reads the checkpoint's manifest only: the weights load on a
    cache miss."""
    from vgpt.checkpoint import load_checkpoint, read_student, recorded_identity
    from vgpt.codecs import check_codec_fits, codec_id, load_codec
    from vgpt.export.bundle import ExportConfig, export_bundle

    checkpoint, codec_dir, defaults = resolve_checkpoint(source, codec_source)
    student = read_student(checkpoint)  # a distilled student exports its own table with one branch
    loaded = None
    identity = recorded_identity(checkpoint)
    if identity is None:  # the released format: its hash needs the weights
        loaded = load_checkpoint(checkpoint)
        identity = loaded.weights_sha256, loaded.model.config
    weights_sha256, config = identity
    layout = _checkpoint_layout(layout, defaults, config, checkpoint)
    sampler = _sampler(student, defaults, steps, guidance, checkpoint)
    # The manifest's format too: a bundle cached by a vgpt that wrote an older one is exported again, so that
    # the C/C++ runtime (which binds by format 3's plan) can load every cached export.
    key_fields = {"weights": weights_sha256, "codec": codec_id(codec_dir), "layout": layout.to_dict(),
                  "sampler": [sampler.steps, sampler.shift, sampler.guidance], "versions": _versions(),
                  "format": FORMAT_VERSION}  # fmt: skip
    if student is not None:
        key_fields["student"] = student.to_dict()
    key_fields = json.loads(json.dumps(key_fields))  # as the manifest holds it (lists, not tuples), to compare
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    out = cache_root() / key
    with _cache_lock(out, checkpoint) as writable:  # concurrent first runs: one exports, the others wait and reuse it
        if writable:
            for stale in out.parent.glob(f".{out.name}.*"):  # left by an export that was killed
                shutil.rmtree(stale, ignore_errors=True)
        if (out / MANIFEST).is_file():
            try:
                # The key names the source weights' hash, the codec's, the layout, the sampler and the
                # library versions; load_bundle checks the manifest and every graph file's sha256.
                if load_bundle(out, trust_cache=trust_cache).manifest.sources.get("key") == key_fields:
                    return out
                log.info("cached export %s no longer matches; exporting again", out)
            except (BundleError, ValueError) as err:
                log.warning("the cached export %s is damaged (%s): exporting it again", out, err)
        if not writable:
            raise BundleError(f"the cache {cache_root().parent} cannot be written and holds no valid export of "
                              f"{checkpoint} for these settings; set VGPT_CACHE to a writable folder (or fill this "
                              "one where it can be written)")  # fmt: skip
        if loaded is None:
            loaded = load_checkpoint(checkpoint)  # checks the weights against the manifest's hash
        codec = load_codec(codec_dir)
        check_codec_fits(codec, loaded, codec_dir)
        log.info("exporting %s into %s (first use)", checkpoint, out)
        if loaded.student != student:
            raise BundleError(f"{checkpoint}: its manifest's student record changed while it loaded; run again")
        config = ExportConfig(layouts=(layout,), sampler=sampler, student=student)
        export_bundle(loaded.model, codec, out, config, sources={"checkpoint": checkpoint, "key": key_fields},
                      overwrite=True)  # fmt: skip
    return out


@contextlib.contextmanager
def _cache_lock(folder: Path, what: str):
    """An exclusive lock on `folder`'s cache entry (a lock file beside it), released on exit or death.
    Waiting for another process's export says so (it can take minutes on a loaded machine). Yields
    whether the cache can be written: a read-only cache (a read-only mount, another user's folder) is
    only read, and needs no lock, since nobody can change it."""
    import fcntl
    import time

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        handle = open(folder.parent / f"{folder.name}{LOCK_SUFFIX}", "a")
    except OSError as err:
        if not (isinstance(err, PermissionError) or is_storage_error(err)):
            raise
        log.info("the cache %s cannot be written (%s): reading it only", folder.parent, err.strerror)
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            log.info("waiting for another process that is exporting %s into %s (first use); its bundle is then "
                     "reused", what, folder)  # fmt: skip
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("the other export finished after %.0f s", time.monotonic() - started)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_bundle(source: str | Path) -> bool:
    try:
        root = find_manifest(source)
    except BundleError:
        return False
    fix = "the file is damaged: re-export the bundle (or re-save the checkpoint) it belongs to"
    return read_json_object(root / MANIFEST, BundleError, fix).get("format") == FORMAT


def _is_engine(source: str | Path) -> bool:
    path = Path(source)
    return path.suffix == ".plan" or (path.is_dir() and (path / ENGINE_MANIFEST).is_file())


def history_frames(source: str | Path | ModelSource | None, layout: str | LayoutRequest | None = None,
                   model: str | None = None) -> int | None:  # fmt: skip
    """The history frames a prediction from `source` (at `layout`) needs, read from its manifest or
    defaults.json without loading the model, so that a too-short input is refused first. None where only
    loading tells (engines, or a source that loading will refuse)."""
    from vgpt.default_model import SETTINGS, Defaults, default_model

    if isinstance(layout, LayoutRequest):
        return layout.history
    try:
        source = resolve_source(source, model)
    except (BundleError, ValueError):
        return None  # loading says what is wrong
    if source.kind == "engines" or (source.path is not None and not source.path.exists()):
        return None
    if source.kind == "bundle":
        bundle = _manifest_only(source.path)
        return bundle.layout(pick_layout(bundle, layout)).layout.history_frames
    if source.path is None or (source.path / SETTINGS).is_file():
        return default_model(source.path).defaults.history
    return Defaults().history


def open_backend(source: str | Path | ModelSource | None, options: LoadOptions | None = None, **fields) -> Backend:
    """One stream over the model the user names: `open_model(...).stream()`."""
    return open_model(source, options, **fields).stream()


def open_model(source: str | Path | ModelSource | None, options: LoadOptions | None = None, **fields) -> Model:
    """The model for what the user names (see vgpt.runtime.predictor.load_model) with `options` (or a
    `LoadOptions` made of `fields`): loaded once, shared by the streams `stream()` opens."""
    if options is not None and fields:
        raise TypeError("open_model: give options or keyword fields, not both")
    options = options if options is not None else LoadOptions(**fields)
    source = resolve_source(source, options.model)
    if options.backend == "tensorrt" or source.kind == "engines":
        return _tensorrt_model(source, options)
    if options.trusted_keys and source.kind != "bundle":
        raise BundleError(f"--trusted-key loads only signed export bundles, and {source} is a checkpoint: export it "
                          "with vgpt-export --sign KEY and load the bundle")  # fmt: skip
    if source.kind == "bundle" and options.codec is not None:
        raise BundleError(f"{source} is an export bundle with its codec graphs inside; --codec applies to checkpoints")
    if options.backend == "torch":
        if source.kind == "bundle":
            raise BundleError(f"{source} is an ONNX bundle; the torch backend needs a checkpoint folder")
        return _torch_model(source.path, options)
    if source.kind == "bundle":
        bundle_dir = source.path
    else:
        bundle_dir = cached_export(source.path, options.steps, options.guidance, options.codec, options.trust_cache,
                                   layout=options.layout)  # fmt: skip
    bundle = load_bundle(bundle_dir, trust_cache=options.trust_cache, trusted_keys=options.trusted_keys)
    if bundle.manifest.sampler.student is not None:
        from vgpt.student import student_sampler

        student_sampler(bundle.manifest.sampler.student, options.steps, options.guidance, source=str(bundle.root))
    for name in ("steps", "guidance"):
        recorded, value = getattr(bundle.sampler, name), getattr(options, name)
        if value is not None and value != recorded:
            raise BundleError(f"{bundle.root} was exported with {name}={recorded}, not {value}: the schedule "
                              f"and guidance are baked into the graphs; re-export with --{name} {value}")  # fmt: skip
    layout = pick_layout(bundle, options.layout) if source.kind == "bundle" else None
    providers = None if options.providers is None else list(options.providers)
    return OrtModel(bundle, layout, threads=options.threads, providers=providers)


def _tensorrt_model(source: ModelSource, options: LoadOptions) -> Model:
    if source.kind == "checkpoint" and source.path is None:
        raise BundleError("the tensorrt backend needs --engine model.plan (or its folder) from vgpt-build")
    if options.steps is not None or options.guidance is not None:
        raise BundleError("--steps/--guidance are baked into TensorRT engines; rebuild from another export")
    if options.trusted_keys:
        raise BundleError("--trusted-key checks signed export bundles; an engines folder is built on its "
                          "target and carries no signature: load the signed bundle with onnxruntime")  # fmt: skip
    if options.layout is not None:  # an engines folder holds one layout: say so before CUDA starts
        from vgpt.engines.manifest import engine_folder, read_engine_manifest

        manifest = read_engine_manifest(engine_folder(source.path))
        entry = _manifest_only(find_manifest(manifest.bundle)).layout(manifest.layout)
        wanted = options.layout
        if not (wanted == entry.name if isinstance(wanted, str) else wanted.matches(entry.layout)):
            raise BundleError(f"{source} holds the engines of one layout, {entry.name} ({_spell(entry.layout)}), "
                              f"not {wanted}: build that layout's engines with vgpt-build")  # fmt: skip
    return TensorRTModel.load(source.path)


def _torch_model(source: Path | None, options: LoadOptions) -> Model:
    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import check_codec_fits, load_codec
    from vgpt.runtime.backends.torch_backend import TorchModel

    checkpoint, codec_dir, defaults = resolve_checkpoint(source, options.codec)
    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    layout = _checkpoint_layout(options.layout, defaults, model.config, checkpoint)
    sampler = _sampler(loaded.student, defaults, options.steps, options.guidance, checkpoint)
    codec = load_codec(codec_dir)
    check_codec_fits(codec, loaded, codec_dir)
    return TorchModel(model, codec, layout, sampler, options.threads)


def _sampler(student, defaults, steps, guidance, checkpoint) -> SamplerConfig:
    """A teacher's sampler from its defaults and the options given; a student's own (options must agree)."""
    if student is None:
        return defaults.sampler(steps, guidance)
    from vgpt.student import student_sampler

    return student_sampler(student, steps, guidance, source=str(checkpoint))
