import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import BundleError, load_bundle
from vgpt.export.registry import ENTRIES
from vgpt.export.spec import DENOISE, PREFILL
from vgpt.export.verify import VerificationError
from vgpt.layout import Layout
from vgpt.predictors import CachedPredictor

from .conftest import SAMPLER


def run_bundle_loop(entry, history: np.ndarray, z: np.ndarray, steps: int) -> np.ndarray:
    """Prefill once, then `steps` denoise steps feeding each step's outputs to the next."""
    prefill = ort.InferenceSession(str(entry.path(PREFILL)), providers=["CPUExecutionProvider"])
    denoise = ort.InferenceSession(str(entry.path(DENOISE)), providers=["CPUExecutionProvider"])
    (kv,) = prefill.run(None, {"history": history})
    step = np.zeros(1, np.int64)
    for _ in range(steps):
        z, step = denoise.run(None, {"z": z, "kv_cache": kv, "step": step})
    assert step.item() == steps
    return z


def test_bundle_reproduces_the_cached_predictor(tiny_parts, tiny_bundle):
    model, _ = tiny_parts
    bundle = load_bundle(tiny_bundle, verify_hashes=True)
    for entry in bundle.layouts:
        lay = entry.layout
        gen = torch.Generator().manual_seed(4)
        history = torch.randn(1, lay.history_frames, 4, lay.latent_height, lay.latent_width, generator=gen)
        expected = CachedPredictor(model, SAMPLER, window=lay.history_frames).predict(
            history, 1, lay.clip_frames, torch.Generator().manual_seed(9)
        )
        z0 = torch.randn(expected.shape, generator=torch.Generator().manual_seed(9))
        got = run_bundle_loop(entry, history.numpy(), z0.numpy(), SAMPLER.steps)
        # fp32 kernels of ONNX Runtime vs PyTorch (~1e-6 per op) through 4 steps whose velocity divides
        # by (1 - sigma) <= 4x; seen ~1e-5 on O(1) latents.
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=0)


def test_manifest_describes_the_bundle(tiny_bundle):
    manifest = load_bundle(tiny_bundle).manifest
    assert [e.name for e in manifest.layouts] == ["m3-g2-4x4", "m2-g3-4x6"]
    assert manifest.sampler.steps == 4 and manifest.sampler.guidance == 2.0
    assert len(manifest.sampler.schedule) == 5
    assert manifest.rope_factor_set == {"m3-g2-4x4": "long", "m2-g3-4x6": "long"}
    assert manifest.opset == 23 and manifest.precision == "fp32" and manifest.verified
    assert set(manifest.versions) >= {"torch", "onnx", "onnxruntime", "vgpt"}
    denoise = manifest.layout().graphs["denoise"]
    assert [t.name for t in denoise.spec.inputs] == ["z", "kv_cache", "step"]
    assert denoise.spec.inputs[1].shape == (2, 2, 1, 4, 3 * 6, 8)  # layers, k/v, B, nkv, M*block, hd
    assert all(len(f.sha256) == 64 for f in denoise.files.values())
    assert {e["name"] for e in denoise.verification} == {"z_next", "step_next"}


def test_graphs_are_static_and_plain(tiny_bundle):
    for path in tiny_bundle.rglob("*.onnx"):
        model = onnx.load(str(path))
        ops = {n.op_type for n in model.graph.node}
        assert not ops & {"If", "Loop", "Scan"}, path
        assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}, path
        for value in (*model.graph.input, *model.graph.output):
            assert all(d.HasField("dim_value") and d.dim_value > 0 for d in value.type.tensor_type.shape.dim)
        if path.name == "denoise.onnx":
            assert "Attention" in ops, "opset 23 uses ONNX's fused Attention"


def test_opset_18_form_and_external_data_threshold(tiny_parts, tmp_path, monkeypatch):
    model, codec = tiny_parts
    layout = Layout.for_model(model.config, 2, 1, 2, 2)
    # Force external data on this small model to exercise the >2 GB path cheaply.
    monkeypatch.setattr("vgpt.export.onnx_export.EXTERNAL_DATA_BYTES", 0)
    export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,), sampler=SAMPLER, opset=18))
    denoise = tmp_path / "b" / "m2-g1-2x2" / "denoise.onnx"
    assert denoise.with_name("denoise.onnx.data").is_file()
    ops = {n.op_type for n in onnx.load(str(denoise)).graph.node}
    assert "Attention" not in ops and "Softmax" in ops
    assert load_bundle(tmp_path / "b").manifest.layout().graphs["denoise"].tensorrt.ready


def test_a_two_part_kv_attention_bundle_steps_like_the_concatenating_one(tiny_parts, tmp_path):
    model, codec = tiny_parts
    layout = Layout.for_model(model.config, 3, 2, 4, 4)
    ends = {}
    for form in ("concat", "two_part"):
        config = ExportConfig(layouts=(layout,), sampler=SAMPLER, kv_attention=form)  # verified against eager
        export_bundle(model, codec, tmp_path / form, config)
        entry = load_bundle(tmp_path / form).layout(None)
        ops = {n.op_type for n in onnx.load(str(entry.path(DENOISE))).graph.node}
        assert ("Concat" in ops) if form == "concat" else ("Exp" in ops)  # fused Attention / its own softmax
        gen = np.random.default_rng(3)
        history = gen.standard_normal((1, 3, 4, 4, 4)).astype(np.float32)
        ends[form] = run_bundle_loop(entry, history, gen.standard_normal((1, 2, 4, 4, 4)).astype(np.float32), 4)
    # Same arithmetic in another order (one softmax over two score blocks): fp32 round-off through 4 steps,
    # as in test_bundle_reproduces_the_cached_predictor.
    np.testing.assert_allclose(ends["two_part"], ends["concat"], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="kv_attention='copy'"):
        ExportConfig(layouts=(layout,), kv_attention="copy")


def test_failed_verification_leaves_no_bundle(tiny_parts, tmp_path, monkeypatch):
    model, codec = tiny_parts
    monkeypatch.setitem(ENTRIES[DENOISE].tolerance, "float32", (0.0, 0.0))
    layout = Layout.for_model(model.config, 2, 1, 2, 2)
    with pytest.raises(VerificationError, match=r"denoise.onnx: ONNX Runtime disagrees with PyTorch on z_next"):
        export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,), sampler=SAMPLER))
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def test_existing_folder_needs_force(tiny_parts, tmp_path):
    model, codec = tiny_parts
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    config = ExportConfig(layouts=(Layout.for_model(model.config, 2, 1, 2, 2),), sampler=SAMPLER, verify=False)
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        export_bundle(model, codec, tmp_path / "b", config)
    export_bundle(model, codec, tmp_path / "b", config, overwrite=True)
    assert not (tmp_path / "b" / "keep.txt").exists()


def test_a_quantized_precision_needs_a_quantizer_of_that_precision(tiny_parts, tmp_path):
    """export_bundle runs the quantizer it is handed (vgpt.calibration stands above export); before any
    work, a missing or mismatched one is refused with what to pass."""

    class Int8:
        precision = "int8"

    model, codec = tiny_parts
    layout = Layout.for_model(model.config, 2, 1, 2, 2)
    int8 = ExportConfig(layouts=(layout,), sampler=SAMPLER, precision="int8", verify=False)
    with pytest.raises(ValueError, match=r"'int8' needs a quantizer: pass quantizer=.*ModelOptQuantizer\('int8'\)"):
        export_bundle(model, codec, tmp_path / "b", int8)
    with pytest.raises(ValueError, match=r"quantizes to 'int8' but ExportConfig.precision is 'fp8'"):
        export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,), precision="fp8"), quantizer=Int8())
    with pytest.raises(ValueError, match=r"ExportConfig.precision is 'fp32'.*no quantizer for fp32"):
        export_bundle(model, codec, tmp_path / "b", ExportConfig(layouts=(layout,)), quantizer=Int8())
    assert not (tmp_path / "b").exists()


def test_damaged_bundles_are_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    graph = copy / "m3-g2-4x4" / "denoise.onnx"
    assert load_bundle(graph).root == copy, "a graph path finds the manifest above it"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"denoise.onnx has .* bytes, the manifest says .*truncated or replaced"):
        load_bundle(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"no manifest.json at or above .*incomplete"):
        load_bundle(copy)


def test_bfloat16_bundle_holds_bf16_weights_and_is_verified_by_its_dtypes(tiny_parts, tmp_path):
    """For TensorRT 11's bf16 engines. ONNX Runtime's CPU provider has no bf16 kernels (MatMul, Add, Mul:
    NOT_IMPLEMENTED), so the export verifies the graphs with onnx.checker and a walk over their dtypes."""
    from vgpt.export.verify import check_dtypes
    from vgpt.runtime.backends.ort_backend import OrtBackend

    model, codec = tiny_parts
    layout = Layout.for_model(model.config, 3, 2, 4, 4)
    out = tmp_path / "bf16"
    export_bundle(model, codec, out, ExportConfig(layouts=(layout,), sampler=SAMPLER, dtype="bfloat16"))
    # the caller's model is not cast in place (it did: later tests on this session fixture ran in bf16)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    bundle = load_bundle(out)
    assert bundle.manifest.dtype == "bfloat16"
    entry = bundle.layout()
    assert (
        entry.spec(DENOISE).tensor("kv_cache").dtype == "bfloat16"
        and entry.spec(DENOISE).tensor("z").dtype == "float32"
    )
    for graph in entry.graphs:
        weights = [i for i in onnx.load(str(entry.path(graph))).graph.initializer if len(i.dims) >= 2]
        kinds = {onnx.TensorProto.DataType.Name(i.data_type) for i in weights} - {"INT64"}  # shapes, indices
        # The transformer's weights in bf16; the codec stays fp32 (z, latents and frames are fp32).
        assert kinds == ({"FLOAT"} if graph in ("encoder", "decoder") else {"BFLOAT16"}), graph
    with pytest.raises(VerificationError, match=r"weight .* is bfloat16, not float32"):
        check_dtypes(entry.path(PREFILL), entry.spec(PREFILL), "float32")
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.NotImplemented):
        ort.InferenceSession(str(entry.path(PREFILL)), providers=["CPUExecutionProvider"])
    with pytest.raises(BundleError, match=r"bfloat16 graphs.*vgpt-build --precision bf16"):
        OrtBackend(bundle)
