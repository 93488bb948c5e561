"""torch -> ONNX for one graph, through the torch.export-based exporter (static shapes)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from vgpt.export.spec import SUPPORTED_OPSETS, GraphSpec

log = logging.getLogger(__name__)

# Graphs with more initializer bytes than this keep their weights in an external data file: a single
# protobuf cannot exceed 2 GiB.
EXTERNAL_DATA_BYTES = 1_800_000_000
# Opsets we export: 23 brings ONNX's fused Attention and RMSNormalization (fastest in ONNX Runtime on
# our CPUs; TensorRT parses Attention from 10.14 and RMSNormalization from 10.15); 18 is the plain
# MatMul/Softmax form older TensorRT parses.


def export_onnx(module: torch.nn.Module, spec: GraphSpec, args: tuple, path: Path, opset: int,
                translations: dict | None = None) -> Path:  # fmt: skip
    """Export `module` called on `args` to `path` with the spec's tensor names; `translations` maps
    custom torch ops to their ONNX functions (the quantizer's Q/DQ)."""
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"opset {opset} is not supported; use one of {SUPPORTED_OPSETS}")
    weight_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    external = weight_bytes > EXTERNAL_DATA_BYTES
    quiet = io.StringIO()
    # The exporter logs every rewrite at INFO and warns about torchvision ops we never use.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            opset_version=opset,
            dynamo=True,
            external_data=external,
            optimize=True,
            verbose=False,
            custom_translation_table=translations,
        )
        program.save(str(path), external_data=external)
    log.debug("%s", quiet.getvalue())
    return path
