"""The TensorRT decisions that need no TensorRT: settings, FP8 refusal, profiles, buffers, manifests."""

import hashlib
import json
import os

import pytest

from vgpt.config import get_preset
from vgpt.engines.buffers import (
    SHARED_ACTIVATION_GRAPHS,
    StreamIo,
    aligned_bytes,
    engine_buffers,
    shared_activation_bytes,
)
from vgpt.engines.manifest import (
    PLAN_FILES,
    check_engine_manifest,
    check_plan_files,
    check_source_graphs,
    read_engine_manifest,
    source_graph_hashes,
)
from vgpt.engines.settings import (
    build_settings,
    check_precision_supported,
    export_opset,
    parse_tensorrt_version,
    profile_shapes,
    source_bundle,
)
from vgpt.export.contract import (
    ENGINE_MANIFEST,
    BuildSettings,
    EngineError,
    EngineFile,
    EngineManifest,
    GpuRecord,
    SamplerRecord,
)
from vgpt.export.registry import binding_plan, graph_specs
from vgpt.export.spec import DENOISE, PREFILL, kv_cache_shape
from vgpt.layout import Layout


@pytest.fixture
def specs():
    config = get_preset("small")
    return (
        config,
        Layout.from_pixels(config, 4, 4, 64, 64),
        graph_specs(config, Layout.from_pixels(config, 4, 4, 64, 64)),
    )


TRT10, TRT11 = (10, 15), (11, 4)


def test_precision_flags_follow_the_bundle_on_tensorrt_10():
    fp16 = build_settings("fp32", "float32", "fp16", TRT10)
    assert fp16.flags == ("FP16",) and not fp16.strongly_typed  # the builder picks per layer
    assert build_settings("fp32", "float32", "bf16", TRT10).flags == ("BF16",)
    assert build_settings("fp32", "float32", "fp32", TRT10) == BuildSettings("fp32", True, ())
    q = build_settings("fp8", "float32", "fp8", TRT10)
    assert q.strongly_typed and q.flags == ()  # the Q/DQ graph decides every precision
    assert build_settings("int8", "float32", "int8", TRT10, optimization_level=5).optimization_level == 5
    # A graph already in the engine's dtype is built strongly typed on either version.
    assert build_settings("fp32", "float16", "fp16", TRT10) == BuildSettings("fp16", True, ())
    with pytest.raises(EngineError, match="vgpt-export --fp8"):
        build_settings("fp32", "float32", "fp8", TRT10)
    with pytest.raises(EngineError, match="--precision int8"):
        build_settings("int8", "float32", "fp16", TRT10)
    with pytest.raises(EngineError, match=r"0\.\.5"):
        build_settings("fp32", "float32", "fp16", TRT10, optimization_level=7)
    with pytest.raises(EngineError, match=r"weights are float16: build it with --precision fp16.*--dtype bfloat16"):
        build_settings("fp32", "float16", "bf16", TRT10)


def test_tensorrt_11_builds_fp16_and_bf16_only_from_graphs_in_that_dtype():
    """TensorRT 11 removed the FP16/BF16/INT8/FP8 builder flags: no settings may name one."""
    for precision, dtype in (("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")):
        assert build_settings("fp32", dtype, precision, TRT11) == BuildSettings(precision, True, ())
        assert source_bundle(precision, TRT11) == ("fp32", dtype)
    for precision in ("fp8", "int8"):
        assert build_settings(precision, "float32", precision, TRT11) == BuildSettings(precision, True, ())
        assert source_bundle(precision, TRT11) == source_bundle(precision, TRT10) == (precision, "float32")
    for precision, dtype in (("fp16", "float16"), ("bf16", "bfloat16")):
        no_flag = rf"TensorRT 11\.4 has no {precision.upper()} builder flag.*--dtype {dtype}"
        with pytest.raises(EngineError, match=no_flag):
            build_settings("fp32", "float32", precision, TRT11)
        assert source_bundle(precision, TRT10) == ("fp32", "float32")  # the flag path


def test_tensorrt_versions_and_the_opset_each_parses():
    assert parse_tensorrt_version("10.15.1") == (10, 15) and parse_tensorrt_version("11.4.0.post1") == (11, 4)
    for unsupported in ("10.0.1", "9.3.0", "12.0.0"):
        with pytest.raises(EngineError, match=rf"TensorRT {unsupported} is not supported.*10\.1 to 11\.x"):
            parse_tensorrt_version(unsupported)
    with pytest.raises(EngineError, match=r"MAJOR\.MINOR"):
        parse_tensorrt_version("ten")
    # Opset 23 (fused Attention and RMSNormalization) from 10.15; 18 before, except for FP8 Q/DQ, which
    # needs opset >= 19 and so has no opset before 10.15 (gpu_check skips it there).
    assert [export_opset(v, "fp16") for v in ((10, 1), (10, 14), (10, 15), (11, 0))] == [18, 18, 23, 23]
    assert [export_opset(v, "fp8") for v in ((10, 1), (10, 14), (10, 15), (11, 0))] == [None, None, 23, 23]
    assert export_opset((10, 8), "int8") == 18


def test_the_cpp_fixture_is_exported_at_the_opset_the_installed_tensorrt_parses(monkeypatch):
    import sys
    import types

    from tests.cpp_runtime.make_fixtures import fixture_opset

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.8.0"))
    assert fixture_opset() == 18  # the C++ half of gpu_check.sh on TensorRT 10.1-10.14
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="11.4.0"))
    assert fixture_opset() == 23
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed: the export's default
    assert fixture_opset() == 23


def test_the_contexts_that_run_in_turn_share_one_aligned_activation_block():
    sizes = {"encoder": 10_000, "prefill": 3000, "denoise": 5000, "decoder": 4097}
    assert shared_activation_bytes(sizes) == 5120  # the largest of prefill, the steps, the decoder, aligned
    assert shared_activation_bytes({**sizes, "decoder": 5121}) == 5376
    assert "encoder" not in SHARED_ACTIVATION_GRAPHS  # it runs on its own stream, beside predict()
    assert aligned_bytes(0) == aligned_bytes(1) == 256 and aligned_bytes(512) == 512


def test_fp8_is_refused_below_compute_capability_8_9_with_a_way_out():
    check_precision_supported("fp8", (8, 9), "NVIDIA L4")
    check_precision_supported("fp8", (9, 0), "NVIDIA H100")
    for name, cc in (("Orin", (8, 7)), ("NVIDIA A100", (8, 0))):
        with pytest.raises(EngineError, match="--int8") as err:
            check_precision_supported("fp8", cc, name)
        assert f"{cc[0]}.{cc[1]}" in str(err.value)
    check_precision_supported("int8", (8, 7), "Orin")
    with pytest.raises(EngineError, match="BF16"):
        check_precision_supported("bf16", (7, 5), "T4")


def test_profiles_are_the_static_shapes(specs):
    s = specs[2]
    shapes = profile_shapes(s[DENOISE])
    assert set(shapes) == {"z", "kv_cache", "step"}
    assert all(lo == opt == hi for lo, opt, hi in shapes.values())
    assert shapes["z"][0] == (1, 4, 4, 8, 8)


def test_a_tensorrt_stream_shares_the_kv_cache_and_alternates_the_steps(specs):
    config, layout, s = specs
    plan = binding_plan(s, layout)
    buffers = engine_buffers(plan)  # the append graph's buffers are not a TensorRT stream's
    assert [b.name for b in buffers] == ["frame", "latent", "history", "kv", "z0", "z1", "step0", "step1", "clip",
                                         "frames_out"]  # fmt: skip
    kv = plan.buffer("kv")
    assert kv.shape == kv_cache_shape(config, layout)
    # One allocation, bound as prefill's output and both steps' input.
    assert plan.target("prefill", "kv_cache") == plan.target("denoise", "kv_cache", 0)
    assert plan.target("denoise", "kv_cache", 1).buffer == "kv"
    even, odd = plan.phase("denoise").bindings
    assert even.outputs["z_next"] == odd.inputs["z"] and odd.outputs["z_next"] == even.inputs["z"]
    assert even.outputs["step_next"] == odd.inputs["step"]
    assert StreamIo.of(plan, 50).result == "z0" and StreamIo.of(plan, 3).result == "z1"
    assert plan.buffer("step0").nbytes == 8
    assert sum(b.nbytes for b in buffers) > kv.nbytes


def _manifest(tmp_path):
    """Engines of all four required graphs; only the denoising step's file is written."""
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"engine-bytes")
    plans = {g: EngineFile(PLAN_FILES[g], 12, "0" * 64) for g in ("encoder", "prefill", "decoder")}
    plans[DENOISE] = EngineFile(PLAN_FILES[DENOISE], 12, hashlib.sha256(b"engine-bytes").hexdigest())
    return EngineManifest(tensorrt_version="10.15.1", gpu=GpuRecord("NVIDIA H100", (9, 0)), layout="m4-g4-8x8",
                          bundle_precision="fp8", builder=build_settings("fp8", "float32", "fp8", (10, 15)),
                          sampler=SamplerRecord(2, 1.0, 1.5, (0.0, 0.5, 1.0)), plans=plans,
                          source_graphs_sha256={DENOISE: "abc"}, bundle=str(tmp_path / "bundle"))  # fmt: skip


def test_engine_manifest_round_trips_and_refuses_malformed_fields(tmp_path):
    manifest = _manifest(tmp_path)
    (tmp_path / ENGINE_MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2))
    assert read_engine_manifest(tmp_path) == manifest
    data = manifest.to_dict()
    data["gpu"]["compute_capability"] = [9]
    with pytest.raises(EngineError, match=r"field 'gpu\.compute_capability' must be \[major, minor\]"):
        EngineManifest.from_dict(data)
    del data["plans"]["encoder"]
    data["gpu"]["compute_capability"] = [9, 0]
    with pytest.raises(EngineError, match=r"field 'plans' lacks \['encoder'\]"):
        EngineManifest.from_dict(data)
    with pytest.raises(EngineError, match="not a vgpt engine manifest"):
        EngineManifest.from_dict({**data, "format": "other"})
    (tmp_path / ENGINE_MANIFEST).write_text("{broken")
    with pytest.raises(EngineError, match=r"engines\.json is not valid JSON"):
        read_engine_manifest(tmp_path)


def test_engine_manifest_refuses_other_versions_other_gpus_and_truncated_plans(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    manifest = _manifest(tmp_path)
    plans = {g: p for g, p in manifest.plans.items() if g == DENOISE}
    manifest = EngineManifest(**{**manifest.__dict__, "plans": plans})  # only the written file
    assert manifest.builder.strongly_typed and manifest.bundle_precision == "fp8" and manifest.precision == "fp8"
    check_engine_manifest(manifest, "10.15.1", "NVIDIA H100", (9, 0))
    # the same release with a wheel's build suffix: the C/C++ runtime compares major.minor.patch too
    check_engine_manifest(manifest, "10.15.1.post1", "NVIDIA H100", (9, 0))
    for other in ("10.16.0", "10.15.2", "10.15"):
        with pytest.raises(EngineError, match=r"TensorRT 10\.15\.1.*rebuild"):
            check_engine_manifest(manifest, other, "NVIDIA H100", (9, 0))
    with pytest.raises(EngineError, match=r"built for NVIDIA H100.*rebuild"):
        check_engine_manifest(manifest, "10.15.1", "NVIDIA L4", (8, 9))
    check_plan_files(manifest, tmp_path)
    (tmp_path / "model.plan").write_bytes(b"engine")
    with pytest.raises(EngineError, match="truncated"):
        check_plan_files(manifest, tmp_path)
    (tmp_path / "model.plan").write_bytes(b"ENGINE-bytes")
    os.utime(tmp_path / "model.plan", ns=(0, 1))  # a write of the same size within one clock tick
    with pytest.raises(EngineError, match="sha256"):
        check_plan_files(manifest, tmp_path)
    (tmp_path / "model.plan").unlink()
    with pytest.raises(EngineError, match="missing"):
        check_plan_files(manifest, tmp_path)


def test_engines_not_built_from_the_graphs_the_bundle_holds_now_are_refused(fp32_bundle, tmp_path):
    """What the C/C++ runtime checks at load (cpp/src/engines.cpp, check_sources) the Python TensorRT
    backend checks too: each engine's recorded source is the sha256 of the ONNX file the bundle holds now."""
    import dataclasses

    from vgpt.export.manifest import load_bundle
    from vgpt.export.spec import DECODER, ENCODER
    from vgpt.integrity import sha256_file

    entry = load_bundle(fp32_bundle).layout()
    graphs = (ENCODER, PREFILL, DENOISE, DECODER)
    now = source_graph_hashes(entry, graphs)
    assert now == {g: sha256_file(entry.path(g)) for g in graphs}, "what vgpt-build hashes when it builds"
    built = dataclasses.replace(_manifest(tmp_path), source_graphs_sha256=now)
    check_source_graphs(built, now)
    stale = dataclasses.replace(built, source_graphs_sha256={**now, DENOISE: "0" * 64})  # built before a re-export
    with pytest.raises(EngineError, match=r"the denoise engine was not built from the denoise graph.*re-exported"):
        check_source_graphs(stale, now)
    missing = dataclasses.replace(built, source_graphs_sha256={g: s for g, s in now.items() if g != PREFILL})
    with pytest.raises(EngineError, match="the prefill engine was not built"):
        check_source_graphs(missing, now)


def test_tensorrt_code_imports_lazily_and_says_how_to_install(monkeypatch):
    import subprocess
    import sys

    # Importing our TensorRT code imports neither TensorRT nor CUDA (a fresh interpreter, installed or not).
    code = "import sys, vgpt.engines.build, vgpt.runtime.backends.trt_backend; print('tensorrt' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    # Where TensorRT cannot be imported, the error says where to get it (a None entry makes the import fail
    # whether or not TensorRT is installed here).
    from vgpt.engines.build import import_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match="NVIDIA's package index"):
        import_tensorrt()


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_gpu_build_and_run_matches_onnxruntime(tmp_path):
    """On a GPU machine: the whole check (scripts/gpu_check.sh runs the same on the bundled model)."""
    from vgpt.cli.gpu_check import gpu_check

    results = gpu_check(tmp_path, precisions=("fp16",), clips=1)
    assert all(r["passed"] for r in results)


def test_gpu_check_skips_fp8_where_the_parser_cannot_take_its_opset(monkeypatch, tmp_path, capsys):
    """TensorRT 10.1-10.14 parse opset 18 at most for our graphs; FP8 Q/DQ needs 19+: skipped, with why."""
    import types

    import vgpt.cli.gpu_check as check

    monkeypatch.setattr(check, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.8.0"))
    monkeypatch.setattr(check, "gpu_identity", lambda: ("NVIDIA H100", (9, 0)))
    assert check.gpu_check(tmp_path, precisions=("fp8",)) == []
    assert "skip fp8: FP8 Q/DQ needs opset >= 19" in capsys.readouterr().out
    assert json.loads((tmp_path / "gpu-check.json").read_text()) == [] and not list(tmp_path.glob("bundle-*"))
