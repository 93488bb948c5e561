"""One tamper fixture that both runtimes must refuse (docs/reliability.md, "Crafted and altered bundles").

`write_cases(bundle, out)` writes altered copies of an export bundle under `out`, each in its own
folder beside an `outside/` folder that a crafted manifest points into, and returns their index
(paths relative to `out`):

    {"cases": [{"name", "bundle", "trusted_key" (or null), "python": regex, "cpp": fragment}, ...], ...}

`tests/cpp_runtime/test_tamper.py` loads every case with `load_bundle` and the C++ test
`cpp/tests/test_tamper.cpp` with `vgpt_model_load` (the fixtures `make_fixtures.py` writes): both must
refuse each case with VGPT_BAD_BUNDLE / BundleError and a message that says nothing about `outside/`
(its secret file is SECRET_BYTES long; no message may carry that number). A signed copy and the key
that signed it are written too (`signed`, `trusted_key`): it must load in both.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from vgpt.export.contract import MANIFEST, MANIFEST_HASH
from vgpt.export.signing import load_signing_key, new_signing_key, sign_bundle
from vgpt.integrity import canonical_sha256, sha256_file

SECRET_BYTES = 631  # the size of the audit's /etc/shadow: the file outside the bundle a manifest names


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def _write(bundle: Path, manifest: dict, rehash: bool = True) -> None:
    """Write `manifest`; with `rehash`, with its own hash recomputed (what a crafted manifest does)."""
    if rehash:
        manifest[MANIFEST_HASH] = canonical_sha256(manifest, MANIFEST_HASH)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _layout(manifest: dict) -> dict:
    return manifest["layouts"][0]


def _graph_path(bundle: Path, graph: str) -> Path:
    layout = _layout(_manifest(bundle))
    return bundle / layout["name"] / layout["graphs"][graph]["file"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def edited_steps(bundle: Path, outside: Path) -> None:
    m = _manifest(bundle)
    m["sampler"]["steps"] = 10 if m["sampler"]["steps"] != 10 else 2
    _write(bundle, m, rehash=False)


def no_manifest_hash(bundle: Path, outside: Path) -> None:
    m = _manifest(bundle)
    del m[MANIFEST_HASH]
    _write(bundle, m, rehash=False)


def flipped_graph_bytes(bundle: Path, outside: Path) -> None:
    _flip(_graph_path(bundle, "denoise"))


def truncated_graph(bundle: Path, outside: Path) -> None:
    path = _graph_path(bundle, "encoder")
    os.truncate(path, path.stat().st_size - 100)


def wrong_shape(bundle: Path, outside: Path) -> None:
    m = _manifest(bundle)
    frames = next(t for t in _layout(m)["graphs"]["encoder"]["inputs"] if t["name"] == "frames")
    frames["shape"][2] *= 2
    _write(bundle, m)


def _steps(m: dict) -> list:
    return _layout(m)["bindings"]["phases"]["denoise"]["bindings"]


def plan_unknown_buffer(bundle: Path, outside: Path) -> None:
    m = _manifest(bundle)
    _steps(m)[0]["inputs"]["kv_cache"]["buffer"] = "nowhere"
    _write(bundle, m)


def plan_steps_not_fed(bundle: Path, outside: Path) -> None:
    """Step binding 0 reads step1 and writes step0: the next step would not read the index it wrote."""
    m = _manifest(bundle)
    inputs, outputs = _steps(m)[0]["inputs"], _steps(m)[0]["outputs"]
    inputs["step"], outputs["step_next"] = outputs["step_next"], inputs["step"]
    _write(bundle, m)


def plan_missing(bundle: Path, outside: Path) -> None:
    m = _manifest(bundle)
    del _layout(m)["bindings"]
    _write(bundle, m)


def graph_file_outside(bundle: Path, outside: Path) -> None:
    """The audit's `../../outside/evil.onnx`: a graph loaded from outside the bundle, recorded as hashed."""
    m = _manifest(bundle)
    evil = outside / "evil.onnx"
    shutil.copyfile(_graph_path(bundle, "encoder"), evil)
    graph = _layout(m)["graphs"]["encoder"]
    graph["file"] = "../../outside/evil.onnx"
    graph["files"] = {graph["file"]: {"bytes": evil.stat().st_size, "sha256": sha256_file(evil)}}
    _write(bundle, m)


def graph_file_not_hashed(bundle: Path, outside: Path) -> None:
    """A graph file inside the bundle that its `files` do not list (so nothing would hash it)."""
    m = _manifest(bundle)
    graph = _layout(m)["graphs"]["encoder"]
    shutil.copyfile(bundle / _layout(m)["name"] / graph["file"], bundle / _layout(m)["name"] / "evil.onnx")
    graph["file"] = "evil.onnx"
    _write(bundle, m)


def layout_outside(bundle: Path, outside: Path) -> None:
    """The audit's layout named `../../outside/L`, holding copies of the real graphs."""
    m = _manifest(bundle)
    layout = _layout(m)
    shutil.copytree(bundle / layout["name"], outside / "L")
    m["rope_factor_set"]["../../outside/L"] = m["rope_factor_set"].pop(layout["name"])
    layout["name"] = "../../outside/L"
    _write(bundle, m)


def files_outside(bundle: Path, outside: Path) -> None:
    """A `files` entry naming a file outside (`../../outside/secret`, like `/etc/shadow`)."""
    m = _manifest(bundle)
    secret = outside / "secret"
    graph = _layout(m)["graphs"]["decoder"]
    graph["files"]["../../outside/secret"] = {"bytes": 1, "sha256": "0" * 64}  # wrong on purpose: no leak of
    _write(bundle, m)  # the real size may follow (the audit saw "has 631 bytes")
    assert secret.stat().st_size == SECRET_BYTES


def link_outside(bundle: Path, outside: Path) -> None:
    """A graph file that is a link to an identical copy outside the bundle."""
    path = _graph_path(bundle, "encoder")
    shutil.copyfile(path, outside / "encoder.onnx")
    path.unlink()
    path.symlink_to(os.path.relpath(outside / "encoder.onnx", path.parent))


def manifest_list(bundle: Path, outside: Path) -> None:
    (bundle / MANIFEST).write_text("[]")


def manifest_not_utf8(bundle: Path, outside: Path) -> None:
    (bundle / MANIFEST).write_bytes(b'{"format": "vgpt-onnx-bundle\xff"}')


def manifest_invalid_json(bundle: Path, outside: Path) -> None:
    (bundle / MANIFEST).write_text("{not json")


def manifest_deep(bundle: Path, outside: Path) -> None:
    (bundle / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)


def manifest_huge(bundle: Path, outside: Path) -> None:
    with open(bundle / MANIFEST, "r+b") as f:  # sparse: refused by its size before a byte is read
        f.truncate(17 << 20)


# name -> (alteration, whether the trusted key is given, Python's message (regex), C++'s fragment)
CASES: dict[str, tuple[Callable[[Path, Path], None], bool, str, str]] = {
    "edited-steps": (edited_steps, False, "was edited after the export", "was edited after the export"),
    "no-manifest-hash": (no_manifest_hash, False, "lacks its manifest_sha256", "lacks its manifest_sha256"),
    "flipped-graph-bytes": (flipped_graph_bytes, False, "does not match the sha256", "does not match"),
    "truncated-graph": (truncated_graph, False, "bytes, the manifest says", "bytes, the manifest says"),
    "wrong-shape": (wrong_shape, False, "but model_config and the layout give", "needs float32"),
    "plan-unknown-buffer": (
        plan_unknown_buffer,
        False,
        "kv_cache is bound to buffer 'nowhere', which the plan",
        "kv_cache is bound to buffer 'nowhere', which the plan",
    ),
    "plan-steps-not-fed": (
        plan_steps_not_fed,
        False,
        "binding 0's step_next is not binding 1's step",
        "binding 0's step_next is not binding 1's step",
    ),
    "plan-missing": (plan_missing, False, r"lacks \['bindings'\]", "has no binding plan"),
    "graph-file-outside": (graph_file_outside, False, "is stored as 'encoder.onnx'", "inside its own folder"),
    "graph-file-not-hashed": (graph_file_not_hashed, False, "is stored as 'encoder.onnx'", "has no record of"),
    "layout-outside": (layout_outside, False, "but its layout is", "inside its own folder"),
    "files-outside": (files_outside, False, "only plain file names", "inside its own folder"),
    "link-outside": (link_outside, False, "is a link that leads out of", "is a link that leads out of"),
    "manifest-list": (manifest_list, False, "not an object", "not an object"),
    "manifest-not-utf8": (manifest_not_utf8, False, "not UTF-8", "UTF-8"),
    "manifest-invalid-json": (manifest_invalid_json, False, "not valid JSON", "not valid JSON"),
    "manifest-deep": (manifest_deep, False, "deeper than 64 levels", "deeper than 64 levels"),
    "manifest-huge": (manifest_huge, False, "more than the 16777216", "more than the 16777216"),
    "unsigned": (lambda bundle, outside: None, True, "is not signed", "is not signed"),
    "foreign-signer": (None, True, "none of the trusted keys", "none of the"),
    "edited-after-signing": (None, True, "changed after it was signed", "changed after it was signed"),
}


def write_cases(bundle: Path, out: Path) -> dict:
    """Every case of CASES as an altered copy of `bundle` under `out`; returns the fixture index."""
    out.mkdir(parents=True, exist_ok=True)
    trusted = new_signing_key(out / "trusted-key.pem")
    new_signing_key(out / "foreign-key.pem")
    foreign = load_signing_key(out / "foreign-key.pem")
    signed = out / "signed" / "bundle"
    shutil.copytree(bundle, signed)
    sign_bundle(signed, load_signing_key(out / "trusted-key.pem"))
    cases = []
    for name, (alter, with_key, python, cpp) in CASES.items():
        folder = out / name
        outside = folder / "outside"
        outside.mkdir(parents=True)
        (outside / "secret").write_bytes(b"x" * SECRET_BYTES)
        target = folder / "bundle"
        shutil.copytree(bundle, target)
        if name == "foreign-signer":
            sign_bundle(target, foreign)
        elif name == "edited-after-signing":
            sign_bundle(target, load_signing_key(out / "trusted-key.pem"))
            edited = _manifest(target)
            edited["sampler"]["guidance"] = edited["sampler"]["guidance"] + 1.0
            _write(target, edited)  # its own hash recomputed: only the signature can tell
        else:
            alter(target, outside)
        key = _rel(trusted, out) if with_key else None
        cases.append({"name": name, "bundle": _rel(target, out), "trusted_key": key, "python": python, "cpp": cpp})
    return {
        "secret_bytes": SECRET_BYTES,
        "trusted_key": _rel(trusted, out),
        "signed": _rel(signed, out),
        "cases": cases,
    }


def _rel(path: Path, out: Path) -> str:
    return str(path.relative_to(out))  # the index names paths inside `out`: the folder may be renamed


# The engines folders: what both TensorRT backends check before TensorRT reads a plan
# (vgpt.engines.manifest.check_engine_folder, cpp/src/engines.hpp check_engine_folder), on the host below.
ENGINE_HOST = {"tensorrt_version": "10.7.0", "gpu": "Fixture GPU", "capability": [8, 9]}


def _engines(folder: Path) -> dict:
    return json.loads((folder / "engines.json").read_text())


def _write_engines(folder: Path, manifest: dict) -> None:
    (folder / "engines.json").write_text(json.dumps(manifest, indent=2))


def _edit_engines(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def alter(folder: Path) -> None:
        manifest = _engines(folder)
        edit(manifest)
        _write_engines(folder, manifest)

    return alter


def _append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more")


def _plan_outside(folder: Path) -> None:
    (folder.parent / "outside.plan").write_bytes((folder / "model.plan").read_bytes())
    _edit_engines(lambda m: m["plans"]["denoise"].update(file="../outside.plan"))(folder)


# name -> (alteration of a whole engines folder, Python's message (regex), C++'s fragment); "whole" is the
# control both must accept.
ENGINE_CASES: dict[str, tuple[Callable[[Path], None] | None, str | None, str | None]] = {
    "whole": (None, None, None),
    "other-tensorrt": (_edit_engines(lambda m: m.update(tensorrt_version="10.8.0")),
                       "built with TensorRT 10.8.0, this is TensorRT 10.7.0",
                       "built with TensorRT 10.8.0, this is TensorRT 10.7.0"),
    "other-gpu": (_edit_engines(lambda m: m["gpu"].update(name="Other GPU")), "built for Other GPU",
                  "built for Other GPU"),
    "plan-missing": (lambda f: (f / "prefill.plan").unlink(), "prefill.plan is missing", "prefill.plan is missing"),
    "plan-truncated": (lambda f: _append(f / "decoder.plan"), r"decoder.plan has \d+ bytes, the manifest says",
                       "bytes, the manifest says"),
    "plan-flipped": (lambda f: _flip(f / "model.plan"), "does not match", "does not match its sha256"),
    "plan-outside": (_plan_outside, "plain file name", "inside its own folder"),
    "no-prefill-plan": (_edit_engines(lambda m: m["plans"].pop("prefill")), "lacks", "lists no prefill engine"),
    "stale-source": (_edit_engines(lambda m: m["source_graphs_sha256"].update(denoise="0" * 64)),
                     "the denoise engine was not built from the denoise graph", "the denoise engine in"),
    "engines-invalid-json": (lambda f: (f / "engines.json").write_text("{"), "not valid JSON", "not valid JSON"),
}  # fmt: skip


def write_engine_cases(bundle: Path, out: Path) -> dict:
    """An engines folder of `bundle`'s first layout as vgpt-build writes one (its plans stand-in bytes: no
    TensorRT reads them before these checks), and each of ENGINE_CASES as an altered copy under `out`;
    returns their index (paths relative to `out`'s parent, with the host they are checked on)."""
    from vgpt.engines.manifest import ENGINE_GRAPHS, PLAN_FILES, engine_manifest, source_graph_hashes
    from vgpt.engines.settings import build_settings
    from vgpt.export.contract import EngineFile
    from vgpt.export.manifest import load_bundle

    loaded = load_bundle(bundle)
    entry = loaded.layout()
    whole = out / "whole-template"
    whole.mkdir(parents=True)
    plans = {}
    for i, graph in enumerate(ENGINE_GRAPHS):
        path = whole / PLAN_FILES[graph]
        path.write_bytes(bytes(range(256)) * (4 + i))
        plans[graph] = EngineFile(path.name, path.stat().st_size, sha256_file(path))
    settings = build_settings(loaded.precision, loaded.manifest.dtype, "fp16", (10, 7), 3, 1 << 30)
    host = ENGINE_HOST
    manifest = engine_manifest(loaded.manifest, bundle, entry.name, settings, host["tensorrt_version"], host["gpu"],
                               tuple(host["capability"]), plans, source_graph_hashes(entry, ENGINE_GRAPHS))  # fmt: skip
    _write_engines(whole, manifest.to_dict())
    cases = []
    for name, (alter, python, cpp) in ENGINE_CASES.items():
        folder = out / name / "engines"
        shutil.copytree(whole, folder)
        if alter is not None:
            alter(folder)
        cases.append({"name": name, "engines": _rel(folder, out.parent), "python": python, "cpp": cpp})
    shutil.rmtree(whole)
    return {"host": host, "bundle": _rel(bundle, out.parent), "cases": cases}
