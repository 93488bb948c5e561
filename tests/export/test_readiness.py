"""The TensorRT readiness report reads a graph as TensorRT's ONNX parser would see it."""

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from vgpt.export.readiness import check_graph  # noqa: E402


def _save(tmp_path, nodes, inputs, outputs, opset=18, name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _value(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_a_static_plain_graph_is_ready_from_a_known_release(tmp_path):
    path = _save(tmp_path, [helper.make_node("MatMul", ["a", "b"], ["c"]), helper.make_node("Relu", ["c"], ["d"])],
                 [_value("a", [2, 3]), _value("b", [3, 4])], [_value("d", [2, 4])])  # fmt: skip
    report = check_graph(path)
    assert report.ready and report.min_tensorrt is not None, str(report)
    assert report.ops == {"MatMul": 1, "Relu": 1} and "ready for TensorRT >=" in str(report)


def test_dynamic_shapes_control_flow_custom_ops_and_dtypes_are_each_named(tmp_path):
    loop_body = helper.make_graph([], "body", [], [])
    nodes = [
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("If", ["cond"], ["c"], then_branch=loop_body, else_branch=loop_body),
        helper.make_node("FusedThing", ["b"], ["d"], domain="com.example"),
    ]
    inputs = [_value("a", ["batch", 3]), _value("cond", [], TensorProto.BOOL), _value("s", [1], TensorProto.STRING)]
    report = check_graph(_save(tmp_path, nodes, inputs, [_value("d", [2, 3])]))
    assert not report.ready
    assert report.dynamic == ["a"] and report.control_flow == ["If"] and report.custom_domains == ["com.example"]
    assert report.bad_dtypes == ["s:string"]
    text = str(report)
    assert "NOT ready" in text and "dynamic dimensions: a" in text and "control flow: If" in text
