"""Verification of exported graphs: onnx.checker's full check, then ONNX Runtime against eager PyTorch
on sample inputs through Polygraphy's comparator."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgpt.errors import VgptError
from vgpt.export.spec import GraphSpec

log = logging.getLogger(__name__)


class VerificationError(VgptError, RuntimeError):
    """An exported graph that fails the checker or disagrees with eager PyTorch."""


@dataclass(frozen=True)
class OutputError:
    """How far ONNX Runtime's output is from eager PyTorch's. The rule, element-wise, is numpy's
    isclose: |ort - eager| <= atol + rtol * |eager|; `max_abs` and `max_rel` are the largest of each
    over all elements, and `worst` is the largest |ort - eager| / (atol + rtol * |eager|): <= 1 passes."""

    name: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    worst: float

    @property
    def passed(self) -> bool:
        return self.worst <= 1.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "passed": self.passed}

    def __str__(self) -> str:
        rule = f"|ort - eager| <= {self.atol:g} + {self.rtol:g} * |eager| element-wise"
        if self.passed:
            return f"{self.name}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}: ok, all within {rule}"
        return (f"{self.name}: max abs {self.max_abs:.3g} (max rel {self.max_rel:.3g}), {self.worst:.2f}x the allowed "
                f"{rule}")  # fmt: skip


def check_model(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise VerificationError(f"{path} fails onnx.checker: {err}") from err


def check_dtypes(path: Path, spec: GraphSpec, weights_dtype: str) -> None:
    """The graph's inputs and outputs have the spec's dtypes, and every weight (a floating-point
    initializer of two or more dimensions) is `weights_dtype`: the verification of a bfloat16 graph,
    which ONNX Runtime's CPU provider cannot run (it has no bfloat16 MatMul, Add or Mul kernels)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    def name(elem_type: int) -> str:
        return tensor_dtype_to_np_dtype(elem_type).name  # numpy's names, as the spec's; ml_dtypes' bfloat16

    floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    model = onnx.load(str(path), load_external_data=False)
    found = {v.name: name(v.type.tensor_type.elem_type) for v in (*model.graph.input, *model.graph.output)}
    wrong = [f"{t.name} is {found.get(t.name)}, not {t.dtype}" for t in (*spec.inputs, *spec.outputs)
             if found.get(t.name) != t.dtype]  # fmt: skip
    wrong += [f"weight {i.name} is {name(i.data_type)}, not {weights_dtype}" for i in model.graph.initializer
              if i.data_type in floating and len(i.dims) >= 2 and name(i.data_type) != weights_dtype]  # fmt: skip
    if wrong:
        more = f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""
        raise VerificationError(f"{path}: {'; '.join(wrong[:5])}{more}")


def _eager_runner(module: torch.nn.Module, spec: GraphSpec):
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata

    class EagerRunner(BaseRunner):
        """Polygraphy runner for a torch module on the CPU (Polygraphy's own PytRunner needs CUDA)."""

        def __init__(self) -> None:
            super().__init__(name="pytorch-eager", prefix="pytorch-eager")

        def activate_impl(self) -> None:
            module.eval()

        def deactivate_impl(self) -> None:
            pass

        def get_input_metadata_impl(self):
            meta = TensorMetadata()
            for t in spec.inputs:
                meta.add(t.name, np.dtype(t.dtype), t.shape)
            return meta

        def infer_impl(self, feed_dict):
            start = time.perf_counter()
            with torch.no_grad():
                outs = module(*[torch.from_numpy(np.asarray(feed_dict[t.name])) for t in spec.inputs])
            self.inference_time = time.perf_counter() - start
            outs = outs if isinstance(outs, tuple) else (outs,)
            return OrderedDict((t.name, o.detach().numpy()) for t, o in zip(spec.outputs, outs, strict=True))

    return EagerRunner()


def ort_session(path: Path, basic_optimization: bool = False):
    """A CPU session; Q/DQ graphs with FP8 run in ONNX Runtime's CPU provider only at the basic
    graph-optimisation level."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if basic_optimization:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_with_eager(
    path: Path,
    module: torch.nn.Module,
    spec: GraphSpec,
    feeds: list[dict[str, np.ndarray]],
    atol: float,
    rtol: float,
    basic_optimization: bool = False,
) -> list[OutputError]:
    """Run the graph in ONNX Runtime (CPU) and `module` eagerly on each feed (both through Polygraphy's
    comparator); per output, the largest errors over all feeds and the verdict of `OutputError`'s rule."""
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.comparator import Comparator
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR
    ort_runner = OnnxrtRunner(lambda: ort_session(path, basic_optimization))
    results = Comparator.run([ort_runner, _eager_runner(module, spec)], data_loader=feeds)
    (_, ort_iters), (_, eager_iters) = results.items()
    errors = []
    for t in spec.outputs:
        stat = ErrorStat()
        for a, b in zip(ort_iters, eager_iters, strict=True):
            stat.add(a[t.name], b[t.name], atol, rtol)
        errors.append(stat.result(t.name, atol, rtol))
    return errors


class ErrorStat:
    """The largest absolute, relative and tolerance-relative errors over several arrays; a NaN or inf on
    one side only is an infinite error."""

    def __init__(self) -> None:
        self.max_abs = self.max_rel = self.worst = 0.0

    def add(self, candidate: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> None:
        x = np.asarray(candidate, np.float64)
        y = np.asarray(reference, np.float64).reshape(x.shape)
        both_nan = np.isnan(x) & np.isnan(y)
        diff = np.where(np.isfinite(x) & np.isfinite(y), np.abs(x - y), np.where(both_nan, 0.0, np.inf))
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.max_rel = max(self.max_rel, float((diff / np.maximum(np.abs(y), 1e-12)).max(initial=0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero tolerance: any difference is infinite
            ratio = np.where(diff == 0, 0.0, diff / (atol + rtol * np.abs(y)))
        self.worst = max(self.worst, float(ratio.max(initial=0.0)))

    def result(self, name: str, atol: float, rtol: float) -> OutputError:
        return OutputError(name, self.max_abs, self.max_rel, atol, rtol, self.worst)
