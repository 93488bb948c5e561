"""Opening a backend from what the user names: a bundle, a checkpoint, or the bundled default.

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
from collections.abc import Sequence
from pathlib import Path

import vgpt
from vgpt.cache import LOCK_SUFFIX
from vgpt.config import SamplerConfig
from vgpt.default_model import named_model, resolve_checkpoint
from vgpt.errors import is_storage_error
from vgpt.export.contract import ENGINE_MANIFEST, FORMAT, MANIFEST, BundleError
from vgpt.export.manifest import find_manifest, load_bundle
from vgpt.integrity import cache_dir
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.backends.trt_backend import TensorRTBackend
from vgpt.untrusted import read_json_object

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "torch", "tensorrt")


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
) -> Path:
    """Export the checkpoint (or the bundled default) once into the cache; returns the bundle folder.
    `trust_cache`: reuse the remembered verdicts on its graph files (vgpt.integrity). A warm start reads the
    checkpoint's manifest only: the weights load on a cache miss."""
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
    layout, sampler = defaults.layout(config), _sampler(student, defaults, steps, guidance, checkpoint)
    key_fields = {"weights": weights_sha256, "codec": codec_id(codec_dir), "layout": layout.to_dict(),
                  "sampler": [sampler.steps, sampler.shift, sampler.guidance], "versions": _versions()}  # fmt: skip
    if student is not None:  # a teacher's key stays as it was: its cached exports stay valid
        key_fields["student"] = student.to_dict()
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


def history_frames(source: str | Path | None) -> int | None:
    """The history frames a prediction from `source` needs, read from its manifest or defaults.json
    without loading the model, so that a too-short input is refused first. None where only loading
    tells (engines, or a source that loading will refuse)."""
    from vgpt.default_model import SETTINGS, Defaults, default_model

    path = None if source is None else Path(source)
    if path is None or (path / SETTINGS).is_file():
        return default_model(path).defaults.history
    if not path.exists() or _is_engine(path):
        return None
    if _is_bundle(path):
        return load_bundle(find_manifest(path)).layout().layout.history_frames
    return Defaults().history


def open_backend(source: str | Path | None, backend: str = "onnxruntime", threads: int | None = None,
                 steps: int | None = None, guidance: float | None = None,
                 codec: str | Path | None = None, providers: list[str] | None = None, *, trust_cache: bool = False,
                 trusted_keys: Sequence[str | Path] = (), model: str | None = None):  # fmt: skip
    """The backend for what the user names (see vgpt.runtime.predictor.load_model). `trust_cache`: reuse
    remembered verdicts on files (vgpt.integrity); `trusted_keys`: load only a bundle signed by one of
    these public keys (vgpt.export.signing); `model`: which bundled model (vgpt.default_model.BUNDLED_MODELS)."""
    source = named_model(source, model)
    if backend not in BACKENDS:
        raise BundleError(f"backend {backend!r}: choose one of {BACKENDS}")
    if providers and backend != "onnxruntime":
        raise BundleError(f"execution providers {providers} are ONNX Runtime's; the {backend} backend takes none")
    if backend == "tensorrt" or (source is not None and _is_engine(source)):
        if source is None:
            raise BundleError("the tensorrt backend needs --engine model.plan (or its folder) from vgpt-build")
        if steps is not None or guidance is not None:
            raise BundleError("--steps/--guidance are baked into TensorRT engines; rebuild from another export")
        if trusted_keys:
            raise BundleError("--trusted-key checks signed export bundles; an engines folder is built on its "
                              "target and carries no signature: load the signed bundle with onnxruntime")  # fmt: skip
        return TensorRTBackend(source)
    is_bundle = source is not None and _is_bundle(source)
    if trusted_keys and not is_bundle:
        raise BundleError(f"--trusted-key loads only signed export bundles, and {source or 'the bundled model'} is "
                          "a checkpoint: export it with vgpt-export --sign KEY and load the bundle")  # fmt: skip
    if is_bundle and codec is not None:
        raise BundleError(f"{source} is an export bundle with its codec graphs inside; --codec applies to checkpoints")
    if backend == "torch":
        if is_bundle:
            raise BundleError(f"{source} is an ONNX bundle; the torch backend needs a checkpoint folder")
        return _torch_backend(source, threads, steps, guidance, codec)
    bundle_dir = source if is_bundle else cached_export(source, steps, guidance, codec, trust_cache)
    bundle = load_bundle(bundle_dir, trust_cache=trust_cache, trusted_keys=trusted_keys)
    if bundle.manifest.sampler.student is not None:
        from vgpt.student import student_sampler

        student_sampler(bundle.manifest.sampler.student, steps, guidance, source=str(bundle.root))
    for name, value in (("steps", steps), ("guidance", guidance)):
        recorded = getattr(bundle.sampler, name)
        if value is not None and value != recorded:
            raise BundleError(f"{bundle.root} was exported with {name}={recorded}, not {value}: the schedule "
                              f"and guidance are baked into the graphs; re-export with --{name} {value}")  # fmt: skip
    return OrtBackend(bundle, threads=threads, providers=providers)


def _torch_backend(source, threads, steps, guidance, codec_source):
    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import check_codec_fits, load_codec
    from vgpt.runtime.backends.torch_backend import TorchBackend

    checkpoint, codec_dir, defaults = resolve_checkpoint(source, codec_source)
    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    layout, sampler = defaults.layout(model.config), _sampler(loaded.student, defaults, steps, guidance, checkpoint)
    codec = load_codec(codec_dir)
    check_codec_fits(codec, loaded, codec_dir)
    return TorchBackend(model, codec, layout, sampler, threads)


def _sampler(student, defaults, steps, guidance, checkpoint) -> SamplerConfig:
    """A teacher's sampler from its defaults and the options given; a student's own (options must agree)."""
    if student is None:
        return defaults.sampler(steps, guidance)
    from vgpt.student import student_sampler

    return student_sampler(student, steps, guidance, source=str(checkpoint))
