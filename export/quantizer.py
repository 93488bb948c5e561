"""What a quantized export needs from the quantization, as a protocol: `export_bundle(..., quantizer=...)`
takes any object with these methods, so export stands below the quantization it runs.

`vgpt.calibration.quantizer.ModelOptQuantizer` (NVIDIA ModelOpt's post-training quantization, calibrated
on recorded calibration sets) is the one the commands pass for --fp8/--int8; the tests pass fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from vgpt.codecs.base import LatentCodec
from vgpt.export.contract import Quantization
from vgpt.export.spec import GraphSpec
from vgpt.export.verify import OutputError
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.sampler import SamplerConfig


class Quantizer(Protocol):
    """Quantizes the model of a bundle and what its export and verification through Q/DQ need."""

    @property
    def precision(self) -> str:
        """The bundle's precision, one of `vgpt.export.contract.QUANTIZED_PRECISIONS`."""
        ...

    def quantize(
        self, model: VideoGPT, codec: LatentCodec, layouts: Sequence[Layout], sampler: SamplerConfig
    ) -> Quantization:
        """Quantize `model` in place for these layouts and sampler (the fp32 model records its calibration
        first); the manifest's record of how. The graphs it names are vgpt.export.registry.TRANSFORMER_GRAPHS."""
        ...

    def through_qdq(self, model: VideoGPT) -> AbstractContextManager[None]:
        """Within this context the quantized `model` computes through the op that exports as a Q/DQ pair,
        both for the export and for the eager side of its verification."""
        ...

    def translation_table(self) -> dict:
        """That op's ONNX translation: `torch.onnx.export(..., custom_translation_table=...)`."""
        ...

    def fold_weights(self, path: Path) -> int:
        """Store the quantized weights of the written graph `path` quantized (in place); returns how many."""
        ...

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
        """Verify the quantized graph `path` in ONNX Runtime against the graph module `module` (eager,
        holding the quantized `model`, called within `through_qdq`): one entry per check, as
        `vgpt.export.verify.compare_with_eager` returns them."""
        ...
