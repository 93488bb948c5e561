"""vgpt-export --fp8/--int8 on a tiny model: standard Q/DQ graphs that ONNX Runtime runs, described by
the manifest, close to fp32, and reported on."""

import collections
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.calibration.data import CalibrationConfig
from vgpt.calibration.kernels import integer_kernel_report, u8s8_saturates
from vgpt.calibration.quantizer import ModelOptQuantizer
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.layout import Layout
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.backends.torch_backend import TorchBackend
from vgpt.runtime.evaluate import predict_clips
from vgpt.sampler import SamplerConfig

SAMPLER = SamplerConfig(steps=4, guidance=2.0)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return LightCodec().eval()


@pytest.fixture(scope="module", params=["fp8", "int8"])
def quantized(request, codec, tmp_path_factory):
    precision = request.param
    model = random_model(get_preset("tiny"))
    layout = Layout.from_pixels(model.config, 3, 2, 32, 32)
    out = tmp_path_factory.mktemp(precision) / "bundle"
    config = ExportConfig(layouts=(layout,), sampler=SAMPLER, precision=precision)
    quantizer = ModelOptQuantizer(precision, calibration=CalibrationConfig(count=4, levels=4),
                                  calibration_root=str(tmp_path_factory.getbasetemp() / "calib"))  # fmt: skip
    manifest = export_bundle(model, codec, out, config, quantizer=quantizer)
    QUANTIZED_MODELS[precision] = model  # quantized in place: the eager side of verification
    return precision, out, manifest, layout


QUANTIZED_MODELS: dict = {}


def _ops(path):
    model = onnx.load(str(path))
    return model, collections.Counter((n.domain, n.op_type) for n in model.graph.node)


def test_quantized_bundle_has_standard_qdq_in_the_transformer_graphs_only(quantized):
    precision, out, manifest, _ = quantized
    entry = load_bundle(out).layout()
    for graph in ("prefill", "denoise", "append"):
        model, ops = _ops(entry.path(graph))
        assert ops[("", "QuantizeLinear")] > 0 and ops[("", "DequantizeLinear")] > ops[("", "QuantizeLinear")]
        assert {d for d, _ in ops} == {""}  # default domain only: no TensorRT or ModelOpt custom ops
        kind = onnx.TensorProto.FLOAT8E4M3FN if precision == "fp8" else onnx.TensorProto.INT8
        weights = [t for t in model.graph.initializer if t.data_type == kind and t.dims]
        # Every quantized weight is stored at one byte; no fp32 copy of a quantized weight stays behind.
        assert weights and all(len(t.raw_data) == np.prod(t.dims) for t in weights)
        assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and "weight" in n.input[0]]
    for graph in ("encoder", "decoder"):
        _, ops = _ops(entry.path(graph))
        assert ("", "QuantizeLinear") not in ops
    assert manifest.precision == precision and manifest.quantized
    q = manifest.quantization
    assert q.tool == "nvidia-modelopt" and q.policy["name"] == "backbone" and q.quantized_layers == 8
    assert q.calibration[0]["clips"] == 4 and q.calibration[0]["steps"] == [0, 1, 2, 3]
    assert manifest.requires.min_compute_capability == ((8, 9) if precision == "fp8" else None)
    for graph in manifest.layout().graphs.values():
        assert graph.tensorrt.ready, graph.tensorrt
        assert all(v["passed"] for v in graph.verification)


def test_quantized_bundle_predicts_close_to_fp32(quantized, codec):
    precision, out, _, layout = quantized
    from vgpt.evaluation import layout_clips

    clips, _ = layout_clips(layout, 3)
    backend = OrtBackend(load_bundle(out))
    reference = TorchBackend(random_model(get_preset("tiny")), codec, layout, SAMPLER)
    lat_q, _, _ = predict_clips(backend, clips, seed=0)
    lat_r, _, _ = predict_clips(reference, clips, seed=0)
    rel = np.linalg.norm(lat_q - lat_r) / np.linalg.norm(lat_r)
    # Random tiny weights (no outliers, unit-scale activations): FP8 E4M3 keeps 3 mantissa bits (~3%
    # per value), INT8 ~0.4% of the range per value; through 2 layers, 4 steps and guidance 2 the
    # clip's relative error stays well under 0.2 (seen ~0.03 fp8, ~0.01 int8 at the basic level). Not
    # equal: it quantizes. INT8 runs on integer kernels, which on an AVX2 CPU without VNNI saturate pairs
    # of products in 16 bits: random weights spread over the whole int8 range hit that often (seen 0.25
    # here; 15 % of one step's update), trained weights rarely (the bundled model's task metrics do not
    # move, docs/benchmarks.md).
    bound = 0.35 if precision == "int8" and u8s8_saturates() else 0.2
    assert 1e-5 < rel < bound, rel


def test_int8_runs_on_integer_kernels_at_full_optimization_and_fp8_stays_basic(quantized):
    precision, out, _, _ = quantized
    entry = load_bundle(out).layout()
    backend = OrtBackend(load_bundle(out))
    level = backend._sessions["denoise"].get_session_options().graph_optimization_level
    if precision == "fp8":
        # FP8 is a TensorRT precision: the CPU provider only emulates it, at the basic level.
        assert level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        return
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for graph in ("prefill", "denoise", "append"):
        report = integer_kernel_report(entry.path(graph))
        # Every quantized Linear layer's MatMul, in the graph ONNX Runtime runs, is one integer kernel.
        assert report.quantized_matmuls > 0 and report.all_fused, (graph, report.to_dict())
        assert report.ops.get("DequantizeLinear", 0) == 0, (graph, report.ops)


def test_fp8_needs_opset_19_and_quantization_needs_fp32_weights():
    layout = Layout.from_pixels(get_preset("tiny"), 3, 2, 32, 32)
    with pytest.raises(ValueError, match="opset >= 19"):
        ExportConfig(layouts=(layout,), precision="fp8", opset=18)
    with pytest.raises(ValueError, match="float32"):
        ExportConfig(layouts=(layout,), precision="int8", dtype="float16")
    with pytest.raises(ValueError, match="policy"):
        ModelOptQuantizer("int8", policy="nope")


def test_cli_writes_the_accuracy_report_and_vgpt_eval_runs_the_bundle(tmp_path, monkeypatch):
    from vgpt.checkpoint import save_checkpoint
    from vgpt.cli.eval import eval_main
    from vgpt.cli.export import export_main

    monkeypatch.setenv("VGPT_CACHE", str(tmp_path / "cache"))
    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(tmp_path / "codec")
    out = tmp_path / "int8"
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(tmp_path / "codec"), "--out", str(out),
            "--layout", "3,2,32x32px", "--steps", "3", "--int8", "--calib-count", "1",
            "--calib-levels", "2"]  # fmt: skip
    result = CliRunner().invoke(export_main, args)
    assert result.exit_code == 0, result.output
    # The report's default size follows the calibration asked for (it was 64 clips whatever was asked),
    # and the command says what it is about to cost.
    assert "accuracy report: 2 held-out clips, each through the int8 bundle and the fp32 model at 3 steps" in (
        result.output
    )
    assert "int8 vs fp32 on 2 held-out clips" in result.output
    report = json.loads((out / "accuracy.json").read_text())
    assert report["precision"] == "int8" and len(report["latent_rel_error"]["per_clip"]) == 2
    assert report["psnr_vs_fp32_db"]["min"] > 20 and set(report["eval"]) == {"quantized", "fp32"}

    result = CliRunner().invoke(eval_main, ["--bundle", str(out), "--count", "2", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["precision"] == "int8" and scores["clips"] == 2 and scores["model_mse"] > 0
    # Same clips, same noise as the report's quantized run: the same figure.
    assert abs(scores["model_mse"] - report["eval"]["quantized"]["model_mse"]) < 1e-9
    bad = CliRunner().invoke(eval_main, ["--bundle", str(out), "--steps", "5"])
    assert bad.exit_code != 0 and "cannot be combined with --bundle" in bad.output


def _first_activation_quantizer(model):
    from vgpt.calibration.quantize import _enabled_quantizers

    return next(q for n, q in _enabled_quantizers(model) if n.endswith("input_quantizer"))


def test_verification_ignores_a_rounding_flip_but_not_a_wrong_scale(quantized):
    """The root cause of FP8 verification failing on some CPUs: two kernels 1e-6 apart put a value that
    sits on a rounding boundary on different FP8 codes, and later layers carry the jump. Reproduced here
    on any CPU by nudging one element of the eager side across its nearest boundary."""
    from vgpt.calibration.quantize import qdq, qdq_export, quantizer_scale
    from vgpt.calibration.verify import compare_quantized_with_eager
    from vgpt.export.bundle import PREFILL, sample_inputs
    from vgpt.export.graphs import PrefillGraph
    from vgpt.export.registry import ENTRIES, graph_specs
    from vgpt.export.verify import compare_with_eager

    precision, out, _, layout = quantized
    model = QUANTIZED_MODELS[precision]
    path = load_bundle(out).layout().path("prefill")
    spec = graph_specs(model.config, layout)[PREFILL]
    module = PrefillGraph(model, layout, SAMPLER)
    feeds = sample_inputs(spec, layout, SAMPLER, None, 2)
    atol, rtol = ENTRIES[PREFILL].tolerance["float32"]
    quantizer = _first_activation_quantizer(model)
    scale, zero_point, axis = quantizer_scale(quantizer)

    def nudge(_module, inputs):
        # Move the element nearest (relatively) to a rounding boundary just across it, found by bisection
        # over all elements: a one-code flip from a change of the size of two kernels' round-off.
        x = inputs[0].clone()
        flat = x.reshape(-1)
        codes = qdq(flat, scale, zero_point, axis)
        lo, hi = flat.clone(), flat + flat.abs() * 0.25 + scale  # far enough up to reach the next code
        assert not bool((qdq(hi, scale, zero_point, axis) == codes).any())
        for _ in range(60):
            mid = (lo + hi) / 2
            same = qdq(mid, scale, zero_point, axis) == codes
            lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
        allowed = atol + rtol * flat.abs()  # what the fp32 comparison of this Q node's input tolerates
        i = int(torch.argmin((hi - flat) / allowed))
        assert float(hi[i] - flat[i]) < 0.5 * float(allowed[i])
        flat[i] = hi[i]
        return (x,)

    with qdq_export(model):
        clean = compare_quantized_with_eager(path, module, model, spec, feeds, atol, rtol)
        assert all(e.passed for e in clean), [str(e) for e in clean]
        handle = quantizer.register_forward_pre_hook(nudge)
        try:
            # Compared output to output, as before, the flip exceeds any fp32 tolerance...
            plain = compare_with_eager(path, module, spec, feeds, atol, rtol, basic_optimization=True)
            assert not all(e.passed for e in plain)
            # ...and the code-by-code check, which feeds eager the graph's codes, still passes.
            forced = compare_quantized_with_eager(path, module, model, spec, feeds, atol, rtol)
            assert all(e.passed for e in forced), [str(e) for e in forced]
        finally:
            handle.remove()
        # A real disagreement (the eager side quantizes with another scale) fails, on the codes.
        saved = quantizer.amax.clone()
        try:
            quantizer.amax = saved * 1.5
            wrong = compare_quantized_with_eager(path, module, model, spec, feeds, atol, rtol)
        finally:
            quantizer.amax = saved
    failed = [e for e in wrong if not e.passed]
    assert failed and any(e.name.startswith("Q/DQ codes") for e in failed)


def test_a_student_quantizes_to_int8_calibrated_at_its_own_table(codec, tmp_path):
    """The calibration set records the student's own noise levels (its one-branch step at its table), and
    the quantized graphs are verified code by code like a teacher's."""
    from vgpt.checkpoint import content_hash
    from vgpt.sampler import schedule
    from vgpt.student import StudentSampler, student_indices

    model = random_model(get_preset("tiny"))
    table = schedule(5, 1.5)[student_indices(5, 2)].tolist()
    record = StudentSampler(tuple(table), 2.0, 1.5, 5, content_hash(model.state_dict()), "consistency")
    layout = Layout.from_pixels(model.config, 3, 2, 32, 32)
    config = ExportConfig(layouts=(layout,), sampler=record.sampler(), precision="int8", student=record)
    quantizer = ModelOptQuantizer("int8", calibration=CalibrationConfig(count=2, levels=2),
                                  calibration_root=str(tmp_path / "calib"))  # fmt: skip
    manifest = export_bundle(model, codec, tmp_path / "bundle", config, quantizer=quantizer)
    assert manifest.sampler.student == record and manifest.quantized and manifest.sampler.guidance == 1.0
    assert all(e["passed"] for g in manifest.layout().graphs.values() for e in g.verification)
    backend = OrtBackend(load_bundle(tmp_path / "bundle"))
    assert backend.steps == 2
    history = np.random.default_rng(0).standard_normal((1, 3, 4, 4, 4)).astype(np.float32)
    backend.prefill(history)
    assert np.isfinite(backend.denoise(np.zeros((1, 2, 4, 4, 4), np.float32))).all()
