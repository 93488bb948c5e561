"""Which quantized matrix products of a Q/DQ graph ONNX Runtime's CPU provider runs on integer kernels.

An INT8 graph stores each quantized Linear layer as MatMul(DequantizeLinear(QuantizeLinear(x)),
DequantizeLinear(W_int8)). At `ORT_ENABLE_ALL` the CPU provider's QDQ transformers rewrite that group into
one integer kernel (MatMulIntegerToFloat: uint8 x int8 products summed in int32, scaled once to fp32; on
x86 the int8 activations are first shifted to uint8 with a zero point of 128); at the basic level they
stay DequantizeLinear + fp32 MatMul, which is slower than fp32 alone. This module asks ONNX Runtime for
the graph it actually runs (`SessionOptions.optimized_model_filepath`) and counts, so that a form the
transformers no longer recognise shows up as a number instead of a slow bundle.
"""

from __future__ import annotations

import collections
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The CPU provider's integer matrix kernels a QDQ MatMul group can become.
INTEGER_KERNELS = ("MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul")


def u8s8_saturates() -> bool:
    """Whether this CPU's uint8 x int8 kernels sum pairs of products in 16 bits with saturation: x86 with
    AVX2 but neither AVX-512 VNNI nor AVX-VNNI (`vpmaddubsw`). There a pair of large activations against
    two large same-sign weights is clipped, so an INT8 graph at `ORT_ENABLE_ALL` can differ from its Q/DQ
    semantics (docs/benchmarks.md measures it). VNNI and Arm's dot-product instructions sum in 32 bits."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown x86: assume the widest-spread case
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return not ({"avx512_vnni", "avx_vnni"} & set(flags))


@dataclass(frozen=True)
class KernelReport:
    quantized_matmuls: int  # MatMuls with a DequantizeLinear on both inputs, in the stored graph
    integer_kernels: int  # integer matrix kernels in the graph ONNX Runtime runs
    float_matmuls_on_dq: int  # MatMuls still fed by a DequantizeLinear there (not fused)
    ops: dict[str, int]  # op counts of the graph ONNX Runtime runs

    @property
    def all_fused(self) -> bool:
        return self.float_matmuls_on_dq == 0 and self.integer_kernels >= self.quantized_matmuls

    def to_dict(self) -> dict:
        return {**self.__dict__, "all_fused": self.all_fused}


def _matmuls_on_dq(model) -> int:
    made_by = {o: n.op_type for n in model.graph.node for o in n.output}
    return sum(
        1
        for n in model.graph.node
        if n.op_type in ("MatMul", "FusedMatMul") and any(made_by.get(i) == "DequantizeLinear" for i in n.input[:2])
    )


def integer_kernel_report(path: str | Path, threads: int = 1) -> KernelReport:
    """Load `path` on the CPU provider at `ORT_ENABLE_ALL`, dump the optimized graph and count."""
    import onnx
    import onnxruntime as ort

    stored = onnx.load(str(path), load_external_data=False)
    made_by = {o: n.op_type for n in stored.graph.node for o in n.output}
    quantized = sum(
        1
        for n in stored.graph.node
        if n.op_type == "MatMul" and all(made_by.get(i) == "DequantizeLinear" for i in n.input[:2])
    )
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        # Written for reading back only: ORT warns that an ENABLE_ALL dump is specific to this CPU.
        options.log_severity_level = 3
        # Weights go to a side file, so that a model past protobuf's 2 GiB can be dumped too.
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.data")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
    ops = collections.Counter(n.op_type for n in optimized.graph.node)
    return KernelReport(quantized, sum(ops[k] for k in INTEGER_KERNELS), _matmuls_on_dq(optimized),
                        dict(sorted(ops.items())))  # fmt: skip
