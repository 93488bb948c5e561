"""Post-training quantization through NVIDIA ModelOpt, and its export as standard ONNX Q/DQ.

1. `quantize_model`: ModelOpt's torch quantization (`mtq.quantize`) inserts quantizers into the
   Linear layers a named policy selects and calibrates their ranges (max calibration) with a forward
   loop that runs the prefill and denoising-step graph modules over the calibration set, one clip at
   a time. This is the route that scales to the 3.8B model: nothing beyond one clip's KV cache is
   ever held besides the weights.
2. `qdq_export`: during the ONNX export, every enabled ModelOpt quantizer runs through a registered
   ModelOpt quant backend that calls the `vgpt::qdq` custom op with ModelOpt's calibrated scale; the
   exporter translates that op to QuantizeLinear -> DequantizeLinear in the default ONNX domain
   (FLOAT8E4M3FN or INT8 zero points), the form TensorRT builds in strongly-typed mode. (ModelOpt's
   own torch->ONNX path emits TensorRT custom ops for FP8 through the TorchScript exporter and needs
   its [onnx] extra, which replaces onnxruntime with onnxruntime-gpu.)
3. `fold_weight_qdq`: Q nodes on constant weights are folded into FP8/INT8 initializers (and a
   following Transpose into the stored layout), so the graph stores weights at 1 byte each and keeps
   only DequantizeLinear in front of each weight, as TensorRT expects.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vgpt.calibration.policy import PrecisionPolicy
from vgpt.errors import VgptError
from vgpt.export.onnx_export import EXTERNAL_DATA_BYTES
from vgpt.model import VideoGPT

log = logging.getLogger(__name__)

BACKEND = "vgpt_onnx_qdq"
FP8_MAX, INT8_MAX = 448.0, 127.0


class QuantizationError(VgptError, RuntimeError):
    pass


def require_modelopt():
    try:
        with warnings.catch_warnings():
            # ModelOpt warns at import about any transformers outside the range its Hugging Face
            # integration is tested with; vgpt quantizes its own modules and never uses that integration.
            warnings.filterwarnings("ignore", message=r"transformers .* is not tested with", category=UserWarning)
            import modelopt.torch.quantization as mtq
    except ImportError as err:
        raise QuantizationError(
            "quantized export needs NVIDIA ModelOpt: pip install 'vgpt[modelopt]' "
            f"(nvidia-modelopt with requests and huggingface_hub): {err}"
        ) from err
    return mtq


# --- the Q/DQ pair as a torch op the exporter can translate -------------------------------------------


def _broadcast_scale(scale: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """A scalar scale as is; a 1-D (per-channel) scale shaped to broadcast along `axis` of `x`."""
    if scale.ndim != 1:
        return scale.to(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    return scale.reshape(shape).to(x.dtype)


def quantize_linear(x: torch.Tensor, scale: torch.Tensor, axis: int, fp8: bool) -> torch.Tensor:
    """ONNX QuantizeLinear with a zero zero point: float8_e4m3fn or int8 codes (round half to even,
    saturate)."""
    scaled = x / _broadcast_scale(scale, x, axis)
    if fp8:
        return scaled.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return torch.round(scaled).clamp(-128, 127).to(torch.int8)


@torch.library.custom_op("vgpt::qdq", mutates_args=())
def qdq(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int) -> torch.Tensor:
    """QuantizeLinear then DequantizeLinear as ONNX defines them; the zero point's dtype
    (float8_e4m3fn or int8) picks the format, a 1-D scale quantizes per `axis`."""
    codes = quantize_linear(x, scale, axis, zero_point.dtype == torch.float8_e4m3fn)
    return codes.to(x.dtype) * _broadcast_scale(scale, x, axis)


@qdq.register_fake
def _qdq_fake(x, scale, zero_point, axis):
    return torch.empty_like(x)


def _qdq_onnx(x, scale, zero_point, axis: int):
    from onnxscript import opset23 as op

    q = op.QuantizeLinear(x, scale, zero_point, axis=axis)
    return op.DequantizeLinear(q, scale, zero_point, axis=axis)


def translation_table() -> dict:
    """For `torch.onnx.export(..., custom_translation_table=...)`."""
    return {torch.ops.vgpt.qdq.default: _qdq_onnx}


def quantizer_scale(quantizer) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(scale, zero point, axis) of a calibrated ModelOpt TensorQuantizer, as ONNX wants them: a scalar
    scale per tensor or a 1-D scale per channel."""
    fp8 = isinstance(quantizer.num_bits, tuple)
    if fp8 and tuple(quantizer.num_bits) != (4, 3):
        raise QuantizationError(f"only FP8 E4M3 exports to ONNX Q/DQ, not E{quantizer.num_bits}")
    if not fp8 and quantizer.num_bits != 8:
        raise QuantizationError(f"only 8-bit integers export to ONNX Q/DQ, not {quantizer.num_bits} bits")
    amax = quantizer.amax
    if amax is None:
        raise QuantizationError("a quantizer has no calibrated range; run calibration before exporting")
    scale = amax.detach().to(torch.float32) / (FP8_MAX if fp8 else INT8_MAX)
    # A zero range (a channel that is all zeros) would divide by zero: use the smallest normal scale.
    scale = torch.where(scale > 0, scale, torch.finfo(torch.float32).tiny)
    axis = quantizer.axis if isinstance(quantizer.axis, int) else 0
    scale = scale.reshape(-1) if scale.numel() > 1 else scale.reshape(())
    zero_point = torch.zeros(scale.shape, dtype=torch.float8_e4m3fn if fp8 else torch.int8)
    return scale, zero_point, axis


def _onnx_backend(inputs: torch.Tensor, quantizer) -> torch.Tensor:
    scale, zero_point, axis = quantizer_scale(quantizer)
    return torch.ops.vgpt.qdq(inputs, scale, zero_point, axis)


def _enabled_quantizers(model: torch.nn.Module):
    from modelopt.torch.quantization.nn import TensorQuantizer

    return [(n, m) for n, m in model.named_modules() if isinstance(m, TensorQuantizer) and m.is_enabled]


@contextlib.contextmanager
def qdq_export(model: torch.nn.Module) -> Iterator[None]:
    """Within this context every enabled quantizer of `model` computes through `vgpt::qdq`."""
    from modelopt.torch.quantization.nn.modules.tensor_quantizer import (
        is_registered_quant_backend,
        register_quant_backend,
    )

    if not is_registered_quant_backend(BACKEND):
        register_quant_backend(BACKEND, _onnx_backend)
    quantizers = _enabled_quantizers(model)
    saved = [q.backend for _, q in quantizers]
    try:
        for _, q in quantizers:
            q.backend = BACKEND
        yield
    finally:
        for (_, q), backend in zip(quantizers, saved, strict=True):
            q.backend = backend


def quantize_model(
    model: VideoGPT, precision: str, policy: PrecisionPolicy, forward_loop: Callable[[VideoGPT], None]
) -> dict:
    """Quantize `model` in place with ModelOpt and calibrate it with `forward_loop`; returns a summary
    (quantized layer count and names of the Linear layers kept in high precision)."""
    mtq = require_modelopt()
    config = policy.quant_config(precision)
    mtq.quantize(model, config, forward_loop=forward_loop)
    quantizers = _enabled_quantizers(model)
    if not quantizers:
        raise QuantizationError(f"policy {policy.name!r} quantized no layer of this model")
    layers = sorted({n.rsplit(".", 1)[0] for n, _ in quantizers})
    weighted = (torch.nn.Linear, torch.nn.Conv2d)
    kept = sorted(n for n, m in model.named_modules() if isinstance(m, weighted) and n not in layers)
    return {"quantized_layers": len(layers), "quantizers": len(quantizers), "kept_layers": kept}


# --- weight folding on the exported graph --------------------------------------------------------------


def fold_weight_qdq(model) -> int:
    """Fold QuantizeLinear on constant weights into quantized initializers, in place on an
    `onnx.ModelProto`; a Transpose that only feeds MatMuls after the DequantizeLinear is folded into the
    stored weight too. Returns the number of Q nodes folded."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    remove, folded, made = [], 0, {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or not all(i in inits for i in node.input[:3]):
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "DequantizeLinear":
            continue
        dq = users[0]
        zp = inits[node.input[2]]
        w = numpy_helper.to_array(inits[node.input[0]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % w.ndim
        after = consumers.get(dq.output[0], [])
        transpose = None
        if (w.ndim == 2 and len(after) == 1 and after[0].op_type == "Transpose"
                and all(c.op_type == "MatMul" for c in consumers.get(after[0].output[0], []))):  # fmt: skip
            transpose = after[0]
        # One weight can feed several Q nodes (the two guidance branches): store it quantized once.
        scale = numpy_helper.to_array(inits[node.input[1]])
        key = (node.input[0], scale.tobytes(), zp.data_type, axis, transpose is not None)
        if key not in made:
            fp8 = zp.data_type == onnx.TensorProto.FLOAT8E4M3FN
            codes = quantize_linear(torch.from_numpy(w.astype(np.float32)), torch.from_numpy(scale.astype(np.float32)),
                                    axis, fp8)  # fmt: skip
            q = (codes.view(torch.uint8) if fp8 else codes).numpy()  # numpy has no float8: store the bytes
            if transpose is not None:
                q = np.ascontiguousarray(q.T)
            name = f"{node.input[0]}_quantized{len(made)}"
            graph.initializer.append(onnx.TensorProto(name=name, data_type=zp.data_type, dims=q.shape,
                                                      raw_data=q.tobytes()))  # fmt: skip
            made[key] = name
        if transpose is not None:
            dq.output[0] = transpose.output[0]
            remove.append(transpose)
            axis = 1 - axis
        dq.input[0] = made[key]
        for a in dq.attribute:
            if a.name == "axis":
                a.i = axis
        remove.append(node)
        folded += 1
    for node in remove:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return folded


def fold_weights_file(path: Path) -> int:
    """`fold_weight_qdq` on a saved graph (external data kept external when there is any)."""
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    folded = fold_weight_qdq(model)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    external = sum(len(t.raw_data) for t in model.graph.initializer) > EXTERNAL_DATA_BYTES
    onnx.save_model(model, str(path), save_as_external_data=external, location=data.name if external else None)
    return folded
