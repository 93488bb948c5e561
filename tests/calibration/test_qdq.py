"""The Q/DQ op that exports ModelOpt's quantizers, and the folding of quantized weights."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from vgpt.calibration.quantize import fold_weight_qdq, qdq, quantizer_scale


def _calibrated_quantizer(num_bits, axis, x):
    from modelopt.torch.quantization.config import QuantizerAttributeConfig
    from modelopt.torch.quantization.nn import TensorQuantizer

    q = TensorQuantizer(QuantizerAttributeConfig(num_bits=num_bits, axis=axis))
    q.enable_calib()
    q.disable_quant()
    q(x)
    q.load_calib_amax()
    q.enable_quant()
    q.disable_calib()
    return q


@pytest.mark.parametrize(("num_bits", "axis"), [((4, 3), None), (8, None), (8, 0)])
def test_qdq_matches_modelopt_fake_quantization_in_range(num_bits, axis):
    x = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    quantizer = _calibrated_quantizer(num_bits, axis, x)
    scale, zero_point, ax = quantizer_scale(quantizer)
    ours = qdq(x, scale, zero_point, ax)
    theirs = quantizer(x)
    # Same scale convention (amax / 448 or amax / 127); the two may round a value that sits exactly on
    # a boundary differently (different division kernels): at most one step, on few elements.
    step = (scale.reshape(-1, 1) if scale.ndim else scale) * (2**-3 * 2 if num_bits == (4, 3) else 1)
    diff = (ours - theirs).abs()
    assert (diff > 1e-6).float().mean() < 0.01
    assert bool((diff <= step.expand_as(diff) * 8 + 1e-6).all())
    assert not torch.equal(ours, x)  # it does quantize


def test_qdq_saturates_like_onnx():
    scale, zp = torch.tensor(0.1), torch.zeros((), dtype=torch.int8)
    out = qdq(torch.tensor([-50.0, 50.0, 0.26]), scale, zp, 0)
    np.testing.assert_allclose(out.numpy(), [-12.8, 12.7, 0.3], rtol=1e-6)
    fp8 = qdq(torch.tensor([1e6]), torch.tensor(1.0), torch.zeros((), dtype=torch.float8_e4m3fn), 0)
    assert fp8.item() == 448.0


def _weight_qdq_model(fp8: bool, per_channel: bool) -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 5)).astype(np.float32)  # a Linear weight [out, in]
    amax = np.abs(w).max(axis=1) if per_channel else np.abs(w).max()
    scale = (amax / (448.0 if fp8 else 127.0)).astype(np.float32)
    zp_type = TensorProto.FLOAT8E4M3FN if fp8 else TensorProto.INT8
    zp = helper.make_tensor("zp", zp_type, scale.shape, np.zeros(scale.size, np.uint8).tobytes(), raw=True)
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "scale", "zp"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "scale", "zp"], ["wdq"], axis=0),
        helper.make_node("Transpose", ["wdq"], ["wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "wt"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 6])],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(scale, "scale"), zp],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10), w


def _run(model, x, folder):
    from vgpt.export.verify import ort_session

    path = folder / f"m{len(list(folder.iterdir()))}.onnx"
    onnx.save(model, str(path))
    return ort_session(path, basic_optimization=True).run(None, {"x": x})[0]


@pytest.mark.parametrize(("fp8", "per_channel"), [(True, False), (False, False), (False, True)])
def test_folding_quantized_weights_keeps_the_graph_output(fp8, per_channel, tmp_path):
    model, w = _weight_qdq_model(fp8, per_channel)
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    before = _run(model, x, tmp_path)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_weight_qdq(folded) == 1
    onnx.checker.check_model(folded, full_check=True)
    ops = [n.op_type for n in folded.graph.node]
    assert ops == ["DequantizeLinear", "MatMul"]  # Q and Transpose folded into the stored weight
    (weight,) = [t for t in folded.graph.initializer if t.name.startswith("w_quantized")]
    assert weight.data_type == (TensorProto.FLOAT8E4M3FN if fp8 else TensorProto.INT8)
    assert list(weight.dims) == [5, 6] and len(weight.raw_data) == w.size  # one byte per weight, transposed
    assert "w" not in {t.name for t in folded.graph.initializer}  # the fp32 copy is gone
    # Folding computes the same codes ONNX Runtime's QuantizeLinear computes: bitwise equal outputs.
    np.testing.assert_array_equal(_run(folded, x, tmp_path), before)
