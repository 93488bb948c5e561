"""`ModelOptQuantizer`: the quantizer (`vgpt.export.quantizer.Quantizer`) that vgpt-export --fp8/--int8,
vgpt-bench and the GPU check hand to `export_bundle`.

It records a calibration set per layout with the fp32 model (`vgpt.calibration.data`), quantizes the model
in place through NVIDIA ModelOpt with a named precision policy (`vgpt.calibration.policy`,
`vgpt.calibration.quantize`), exports its quantizers as standard ONNX Q/DQ with the weights stored
quantized, and verifies the graphs code by code (`vgpt.calibration.verify`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgpt.calibration.data import CalibrationConfig, build_calibration
from vgpt.calibration.policy import DEFAULT_POLICY, get_policy
from vgpt.calibration.quantize import fold_weights_file, qdq_export, quantize_model, require_modelopt, translation_table
from vgpt.calibration.verify import compare_quantized_with_eager
from vgpt.codecs.base import LatentCodec
from vgpt.export.contract import QUANTIZED_PRECISIONS, Quantization
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.export.registry import TRANSFORMER_GRAPHS
from vgpt.export.spec import GraphSpec, layout_name
from vgpt.export.verify import OutputError
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.progress import progress_bar
from vgpt.sampler import SamplerConfig

log = logging.getLogger(__name__)

# How each precision's quantizers store values, as the manifest records it.
FORMATS = {"fp8": "FLOAT8E4M3FN per tensor", "int8": "INT8, weights per channel, activations per tensor"}


@dataclass(frozen=True)
class ModelOptQuantizer:
    precision: str  # fp8 or int8
    policy: str = DEFAULT_POLICY  # which layers are quantized (vgpt.calibration.policy)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    calibration_root: str | None = None  # where calibration sets are cached (default: $VGPT_CACHE)
    progress: bool = True  # progress bars for calibration (on a terminal)

    def __post_init__(self) -> None:
        if self.precision not in QUANTIZED_PRECISIONS:
            raise ValueError(f"ModelOptQuantizer.precision={self.precision!r}: use one of {QUANTIZED_PRECISIONS}")
        get_policy(self.policy)

    def quantize(
        self, model: VideoGPT, codec: LatentCodec, layouts: Sequence[Layout], sampler: SamplerConfig
    ) -> Quantization:
        """Record the calibration sets with the fp32 model, then quantize it in place through ModelOpt."""
        require_modelopt()  # a clear error before the calibration work when ModelOpt is missing
        import modelopt

        policy = get_policy(self.policy)
        started = time.perf_counter()
        runs = []
        for layout in layouts:
            calib = build_calibration(model, codec, layout, sampler, self.calibration, self.calibration_root,
                                      self.progress)  # fmt: skip
            runs.append((PrefillGraph(model, layout, sampler), DenoiseGraph(model, layout, sampler), calib))

        def forward_loop(_model) -> None:
            # One clip at a time: its history through prefill, then each recorded noise level through the
            # denoising step against that clip's cache (both guidance branches run inside the step).
            total = sum(len(calib) for _, _, calib in runs)
            with torch.no_grad(), progress_bar(total, f"calibrating {self.precision}", "clip", self.progress) as bar:
                for prefill, denoise, calib in runs:
                    for history, levels in calib.samples():
                        kv = prefill(history)
                        for z, step in levels:
                            denoise(z, kv, step)
                        bar.update(1)

        summary = quantize_model(model, self.precision, policy, forward_loop)
        seed = self.calibration.seed
        calibration = [
            {"layout": layout_name(lay), "seed": seed, **{k: v for k, v in c.manifest.items() if k != "key"}}
            for lay, (_, _, c) in zip(layouts, runs, strict=True)
        ]
        log.info("quantized %d layers (%s, policy %s) in %.1f s", summary["quantized_layers"], self.precision,
                 policy.name, time.perf_counter() - started)  # fmt: skip
        return Quantization(
            tool="nvidia-modelopt", version=modelopt.__version__, algorithm="max", format=FORMATS[self.precision],
            policy=policy.to_dict(), quantized_layers=summary["quantized_layers"], quantizers=summary["quantizers"],
            kept_layers=tuple(summary["kept_layers"]), graphs=TRANSFORMER_GRAPHS, calibration=tuple(calibration),
            seconds=round(time.perf_counter() - started, 1),
        )  # fmt: skip

    def through_qdq(self, model: VideoGPT):
        return qdq_export(model)

    def translation_table(self) -> dict:
        return translation_table()

    def fold_weights(self, path: Path) -> int:
        return fold_weights_file(path)

    def compare_with_eager(
        self,
        path: Path,
        module: torch.nn.Module,
        model: VideoGPT,
        spec: GraphSpec,
        feeds: list[dict[str, np.ndarray]],
        atol: float,
        rtol: float,
    ) -> list[OutputError]:
        return compare_quantized_with_eager(path, module, model, spec, feeds, atol, rtol)
