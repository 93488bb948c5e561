"""Verification of Q/DQ graphs against the quantized eager model, code by code.

Comparing a quantized graph's outputs with eager PyTorch's, as for fp32 graphs, fails at random: the
two compute each Q node's input in another summation order (1e-6 apart), so now and then a value that
lies within 1e-6 of a rounding boundary becomes the neighbouring FP8/INT8 code on one side only. That
is a jump of one quantization step (up to 1/8 of the value for FP8 E4M3, 0.25 for a value near 400x the
scale), and every later layer carries it: on the bundled model a single flip in layer 2 reached 0.07 in
layer 3's keys. Which values flip depends on the CPU's kernels, so a fixed tolerance passes on one
machine and fails on another, whatever its size.

So a quantized graph is verified the way its semantics are defined, without that noise:
1. ONNX Runtime runs a copy of the graph that also returns every activation Q node's input and its
   DequantizeLinear output.
2. The eager model runs with each activation quantizer *fed ONNX Runtime's codes* (its output replaced
   by the graph's DequantizeLinear output for the same call), so both sides carry identical codes from
   layer to layer and only fp32 round-off separates them.
3. Checks: every Q node of the graph is the same quantizer call in eager (matched by module scope and
   call order); each Q node's input agrees with the eager quantizer's input within the fp32 tolerance;
   ONNX Runtime's codes are exactly our Q/DQ of its own input (same scale, rounding, saturation); and
   the outputs agree within the fp32 tolerance. A Q/DQ pair on the wrong tensor, a wrong scale, other
   saturation or NaN handling, or a changed fp32 op fails; a rounding-boundary flip does not.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vgpt.calibration.quantize import _enabled_quantizers, qdq, quantizer_scale
from vgpt.export.spec import GraphSpec
from vgpt.export.verify import ErrorStat, OutputError, VerificationError

# Above this the graph copy with extra outputs is written next to the graph with external data.
_INLINE_BYTES = 1_800_000_000


def _scopes(node) -> tuple[str, ...]:
    """The module paths the exporter recorded for a node, outermost first."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return tuple(s.strip(" '\"") for s in prop.value.strip("[]").split(","))
    return ()


def activation_qdq_pairs(model) -> list[tuple[tuple[str, ...], str, str]]:
    """(module scopes, Q input, DQ output) of every Q node on an activation (not on a constant weight), in
    graph order."""
    inits = {t.name for t in model.graph.initializer}
    dq_of = {n.input[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    pairs = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        dq = dq_of.get(node.output[0])
        if dq is None:
            raise VerificationError(f"QuantizeLinear {node.name} has no DequantizeLinear after it")
        pairs.append((_scopes(node), node.input[0], dq.output[0]))
    return pairs


@contextlib.contextmanager
def _session_with_outputs(path: Path, names: list[str], basic: bool):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path), load_external_data=True)
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            present.add(name)
    options = ort.SessionOptions()
    if basic:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    providers = ["CPUExecutionProvider"]
    if model.ByteSize() < _INLINE_BYTES:
        yield ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        return
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        copy = Path(tmp) / path.name
        onnx.save_model(model, str(copy), save_as_external_data=True, location=copy.name + ".data")
        yield ort.InferenceSession(str(copy), options, providers=providers)


def compare_quantized_with_eager(
    path: Path,
    module: torch.nn.Module,
    quantized_model: torch.nn.Module,
    spec: GraphSpec,
    feeds: list[dict[str, np.ndarray]],
    atol: float,
    rtol: float,
    basic_optimization: bool = True,
) -> list[OutputError]:
    """Steps 1-3 of the module docstring on each feed; `module` is the graph module (computing through
    `vgpt::qdq`) and `quantized_model` the ModelOpt-quantized model inside it. Returns one entry per
    graph output, then one for the Q nodes' inputs and one for the codes."""
    import onnx

    pairs = activation_qdq_pairs(onnx.load(str(path), load_external_data=False))
    quantizers = {n: q for n, q in _enabled_quantizers(quantized_model) if not n.endswith("weight_quantizer")}
    by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for scopes, q_in, dq_out in pairs:
        # The innermost recorded module that is a quantizer (the graph module's prefix differs).
        match = next(([n for n in quantizers if s == n or s.endswith("." + n)] for s in reversed(scopes)
                      if any(s == n or s.endswith("." + n) for n in quantizers)), [])  # fmt: skip
        if len(match) != 1:
            raise VerificationError(f"{path.name}: the Q node on {q_in} (scopes {scopes[-2:]}) is no single "
                                    "quantizer of the model")  # fmt: skip
        by_name[match[0]].append((q_in, dq_out))
    names = [t.name for t in spec.outputs] + [n for _, q_in, dq_out in pairs for n in (q_in, dq_out)]
    stats = {t.name: ErrorStat() for t in spec.outputs}
    inputs_stat = ErrorStat()
    code_mismatches, code_max = 0, 0.0
    with _session_with_outputs(path, names, basic_optimization) as session:
        for feed in feeds:
            ort_out = dict(zip(names, session.run(names, feed), strict=True))
            forcing = _Forcing(by_name, ort_out)
            hooks = [q.register_forward_hook(forcing.hook(n)) for n, q in quantizers.items()]
            try:
                with torch.no_grad():
                    outs = module(*[torch.from_numpy(np.asarray(feed[t.name])) for t in spec.inputs])
            finally:
                for h in hooks:
                    h.remove()
            missing = {n: len(v) - forcing.calls[n] for n, v in by_name.items() if forcing.calls[n] < len(v)}
            if missing:
                raise VerificationError(f"{path.name}: Q nodes with no matching eager quantizer call: {missing}")
            outs = outs if isinstance(outs, tuple) else (outs,)
            for t, o in zip(spec.outputs, outs, strict=True):
                stats[t.name].add(ort_out[t.name], o.numpy(), atol, rtol)
            for eager_in, ort_in in forcing.inputs:
                inputs_stat.add(ort_in, eager_in.numpy(), atol, rtol)
            for name, pair_list in by_name.items():
                scale, zero_point, axis = quantizer_scale(quantizers[name])
                for q_in, dq_out in pair_list:
                    ours = qdq(torch.from_numpy(ort_out[q_in]), scale, zero_point, axis).numpy()
                    theirs = ort_out[dq_out]
                    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
                    code_mismatches += int((~same).sum())
                    code_max = max(code_max, float(np.where(same, 0.0, np.abs(ours - theirs)).max(initial=0.0)))
    errors = [stat.result(name, atol, rtol) for name, stat in stats.items()]
    errors.append(inputs_stat.result(f"Q inputs ({len(pairs)} Q/DQ pairs)", atol, rtol))
    # ONNX Runtime's Q/DQ must be ours exactly: any difference is a semantic one, not round-off.
    errors.append(OutputError(f"Q/DQ codes ({code_mismatches} differ)", code_max, 0.0, 0.0, 0.0,
                              0.0 if code_mismatches == 0 else float("inf")))  # fmt: skip
    return errors


class _Forcing:
    """Forward hooks that replace the k-th call of each activation quantizer by the graph's codes."""

    def __init__(self, by_name: dict[str, list[tuple[str, str]]], ort_out: dict[str, np.ndarray]) -> None:
        self.by_name, self.ort_out = by_name, ort_out
        self.calls: dict[str, int] = defaultdict(int)
        self.inputs: list[tuple[torch.Tensor, np.ndarray]] = []  # (eager input, graph input) per Q node

    def hook(self, name: str):
        def forced(_module, inputs, output):
            k = self.calls[name]
            self.calls[name] += 1
            if k >= len(self.by_name[name]):
                return output  # a call the exported graph pruned (e.g. the last layer's MLP in prefill)
            q_in, dq_out = self.by_name[name][k]
            self.inputs.append((inputs[0].detach(), self.ort_out[q_in]))
            return torch.from_numpy(self.ort_out[dq_out]).reshape(output.shape).to(output.dtype)

        return forced
