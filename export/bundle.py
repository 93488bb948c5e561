"""vgpt-export: a checkpoint -> a bundle of static ONNX graphs per layout, verified, with a manifest.

BUNDLE/
  manifest.json                   written last: a folder without it is an incomplete export
  m{M}-g{G}-{h}x{w}/              one folder per layout
    encoder.onnx prefill.onnx denoise.onnx decoder.onnx append.onnx (rolling mode)
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgpt.atomic import atomic_dir
from vgpt.checkpoint import content_hash
from vgpt.codecs.base import LatentCodec
from vgpt.config import Layout
from vgpt.export.graphs import AppendGraph, DecoderGraph, DenoiseGraph, EncoderGraph, PrefillGraph
from vgpt.export.onnx_export import SUPPORTED_OPSETS, export_onnx
from vgpt.export.readiness import GraphReadiness, check_graph
from vgpt.export.spec import APPEND, DECODER, DENOISE, ENCODER, PREFILL, GraphSpec, graph_specs, layout_name
from vgpt.export.verify import OutputError, VerificationError, check_model, compare_with_eager
from vgpt.model import VideoGPT
from vgpt.rope import select_factor_set
from vgpt.sampler import SamplerConfig, schedule

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "vgpt-onnx-bundle"
FORMAT_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class ExportConfig:
    layouts: tuple[Layout, ...]
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    opset: int = 23
    dtype: str = "float32"  # model weights and KV cache; z, latents and frames stay fp32
    verify: bool = True
    precision: str = "fp32"  # what the graphs compute in: fp32/fp16 here; fp8/int8 from the quantizer

    def __post_init__(self) -> None:
        if not self.layouts:
            raise ValueError("ExportConfig: give at least one layout")
        if self.opset not in SUPPORTED_OPSETS:
            raise ValueError(f"ExportConfig.opset={self.opset}: use one of {SUPPORTED_OPSETS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"ExportConfig.dtype={self.dtype!r}: use one of {sorted(DTYPES)}")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def graph_files(path: Path) -> list[Path]:
    """The .onnx file and its external data file, if any."""
    data = path.with_name(path.name + ".data")
    return [path, data] if data.exists() else [path]


# Tolerances of ONNX Runtime against eager PyTorch, per graph and dtype. fp32: both compute the same
# fp32 arithmetic with different kernels (round-off ~1e-6 on O(1) values); the denoising step divides
# the model's error by (1 - sigma), up to S = 50 times late in the schedule, and adds it to z, so its
# budget is larger. fp16 weights round every matmul to ~1e-3 relative.
TOLERANCES = {
    "float32": {
        ENCODER: (1e-4, 1e-3),
        PREFILL: (1e-4, 1e-3),
        DENOISE: (1e-3, 1e-3),
        DECODER: (1e-4, 1e-3),
        APPEND: (1e-4, 1e-3),
    },
    "float16": {
        ENCODER: (1e-4, 1e-3),
        PREFILL: (5e-2, 5e-2),
        DENOISE: (5e-2, 5e-2),
        DECODER: (1e-4, 1e-3),
        APPEND: (5e-2, 5e-2),
    },
}


def _sample_inputs(spec: GraphSpec, layout: Layout, sampler: SamplerConfig, kv: torch.Tensor | None, seed: int):
    gen = torch.Generator().manual_seed(seed)
    feeds = []
    steps = (0, sampler.steps - 1) if spec.name == DENOISE else (None,)
    for step in steps:
        feed = {}
        for t in spec.inputs:
            if t.name == "step":
                feed[t.name] = np.array([step], np.int64)
            elif t.name == "kv_cache":
                feed[t.name] = kv.numpy()
            elif t.name == "frames":
                feed[t.name] = (torch.rand(t.shape, generator=gen) * 2 - 1).numpy()
            else:
                feed[t.name] = torch.randn(t.shape, generator=gen).numpy()
        feeds.append(feed)
    return feeds


def export_bundle(
    model: VideoGPT,
    codec: LatentCodec,
    out: str | Path,
    config: ExportConfig,
    sources: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export, verify and describe every layout; returns the manifest. Nothing is left in `out` unless
    everything passed: the bundle is built in a temporary sibling folder and renamed at the end."""
    import onnx
    import onnxruntime

    out = Path(out)
    model = model.to(DTYPES[config.dtype]).eval()
    weights_hash = content_hash(model.state_dict())
    codec_state = codec.state_dict() if isinstance(codec, torch.nn.Module) else {}
    started = time.perf_counter()
    layouts_meta = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for layout in config.layouts:
            layouts_meta.append(_export_layout(model, codec, layout, config, tmp))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_config": model.config.to_dict(),
            "rope_factor_set": {layout_name(lay): select_factor_set(
                model.config, (lay.history_frames + lay.clip_frames) * lay.block - 1) for lay in config.layouts},
            "sampler": {"steps": config.sampler.steps, "shift": config.sampler.shift,
                        "guidance": config.sampler.guidance,
                        "schedule": schedule(config.sampler.steps, config.sampler.shift).tolist()},
            "codec": {"type": type(codec).__name__, "latent_channels": codec.latent_channels,
                      "downsample": codec.downsample, "scaling_factor": codec.scaling_factor,
                      "weights_sha256": content_hash(codec_state) if codec_state else None},
            "dtype": config.dtype,
            "precision": config.precision,
            "opset": config.opset,
            "layouts": layouts_meta,
            "weights_sha256": weights_hash,
            "sources": sources or {},
            "versions": {"vgpt": _vgpt_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
            "verified": config.verify,
            "export_seconds": round(time.perf_counter() - started, 1),
        }  # fmt: skip
        # Written last: a folder without manifest.json is visibly incomplete.
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _vgpt_version() -> str:
    import vgpt

    return vgpt.__version__


def _export_layout(model: VideoGPT, codec: LatentCodec, layout: Layout, config: ExportConfig, root: Path) -> dict:
    specs = graph_specs(model.config, layout, config.dtype)
    folder = root / layout_name(layout)
    folder.mkdir()
    prefill = PrefillGraph(model, layout, config.sampler)
    modules = {
        ENCODER: EncoderGraph(codec),
        PREFILL: prefill,
        DENOISE: DenoiseGraph(model, layout, config.sampler),
        DECODER: DecoderGraph(codec),
        APPEND: AppendGraph(model, layout, config.sampler),
    }
    history = torch.randn(specs[PREFILL].inputs[0].shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        kv = prefill(history)
    graphs, errors, readiness = {}, {}, {}
    for name, spec in specs.items():
        path = folder / spec.file
        args = tuple(torch.from_numpy(v) for v in _sample_inputs(spec, layout, config.sampler, kv, 0)[0].values())
        log.info("exporting %s/%s", folder.name, spec.file)
        export_onnx(modules[name], spec, args, path, config.opset)
        if config.verify:
            check_model(path)
            atol, rtol = TOLERANCES[config.dtype][name]
            feeds = _sample_inputs(spec, layout, config.sampler, kv, 2)
            result: list[OutputError] = compare_with_eager(path, modules[name], spec, feeds, atol, rtol)
            errors[name] = result
            for e in result:
                log.info("  %s %s", name, e)
            if not all(e.passed for e in result):
                failed = "; ".join(str(e) for e in result if not e.passed)
                raise VerificationError(f"{folder.name}/{spec.file}: ONNX Runtime disagrees with PyTorch: {failed}")
        readiness[name] = check_graph(path, name)
        graphs[name] = {
            **spec.to_dict(),
            "files": {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in graph_files(path)},
            "nodes": readiness[name].nodes,
            "ops": readiness[name].ops,
            "tensorrt": _readiness_summary(readiness[name]),
            "verification": [e.__dict__ for e in errors.get(name, [])],
        }
    return {"name": folder.name, "layout": layout.to_dict(), "graphs": graphs}


def _readiness_summary(r: GraphReadiness) -> dict:
    return {"ready": r.ready, "min_version": r.min_tensorrt, "unsupported": r.unsupported}
