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

from vgpt.export.spec import GraphSpec

log = logging.getLogger(__name__)


class VerificationError(RuntimeError):
    """An exported graph that fails the checker or disagrees with eager PyTorch."""


@dataclass(frozen=True)
class OutputError:
    name: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    passed: bool  # Polygraphy's verdict: every element within atol or rtol

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (f"{self.name}: max abs {self.max_abs:.3g} (atol {self.atol:g}), max rel {self.max_rel:.3g} "
                f"(rtol {self.rtol:g}) {verdict}")  # fmt: skip


def check_model(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise VerificationError(f"{path} fails onnx.checker: {err}") from err


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
    """Run the graph in ONNX Runtime (CPU) and `module` eagerly on each feed; per output, the largest
    absolute and relative error over all feeds, judged by Polygraphy's simple comparison."""
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.comparator import Comparator, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR
    ort_runner = OnnxrtRunner(lambda: ort_session(path, basic_optimization))
    results = Comparator.run([ort_runner, _eager_runner(module, spec)], data_loader=feeds)
    accuracy = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=atol, rtol=rtol))
    ((_, iterations),) = accuracy[0].items()  # one compare function, one runner pair
    (_, ort_iters), (_, eager_iters) = results.items()
    errors = []
    for t in spec.outputs:
        abs_err, rel_err = 0.0, 0.0
        for a, b in zip(ort_iters, eager_iters, strict=True):
            x, y = np.asarray(a[t.name], np.float64), np.asarray(b[t.name], np.float64)
            diff = np.abs(x - y)
            abs_err = max(abs_err, float(diff.max()))
            rel_err = max(rel_err, float((diff / np.maximum(np.abs(y), 1e-12)).max()))
        passed = all(bool(it[t.name]) for it in iterations)
        errors.append(OutputError(t.name, abs_err, rel_err, atol, rtol, passed))
    return errors
