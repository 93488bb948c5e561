"""vgpt-export: a checkpoint -> a bundle of static ONNX graphs per layout, verified, with a manifest.

BUNDLE/
  manifest.json                   written last: a folder without it is an incomplete export
  m{M}-g{G}-{h}x{w}/              one folder per layout
    encoder.onnx prefill.onnx denoise.onnx decoder.onnx, and for the rolling mode append.onnx
    (approximate) or, for GPDiT's lightweight mask, frame.onnx and ring.onnx (exact: export/gpdit_graphs.py)
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vgpt
from vgpt.atomic import atomic_dir
from vgpt.checkpoint import content_hash
from vgpt.codecs.base import LatentCodec
from vgpt.export.contract import (
    BUNDLE_PRECISIONS,
    FORMAT_VERSION,
    MANIFEST,
    QUANTIZED_PRECISIONS,
    BundleManifest,
    CodecRecord,
    Environment,
    FileRecord,
    GraphRecord,
    LayoutRecord,
    Requirements,
    SamplerRecord,
    TensorRTReadiness,
)
from vgpt.export.graphs import GraphContext, build_graph
from vgpt.export.onnx_export import SUPPORTED_OPSETS, export_onnx
from vgpt.export.quantizer import Quantizer
from vgpt.export.readiness import check_graph
from vgpt.export.registry import ENTRIES, binding_plan, graph_specs
from vgpt.export.signing import sign_bundle
from vgpt.export.spec import (
    DENOISE,
    PREFILL,
    RING,
    GraphSpec,
    exact_rolling,
    layout_name,
)
from vgpt.export.verify import VerificationError, check_dtypes, check_model, compare_with_eager
from vgpt.integrity import sha256_file
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.rope import select_factor_set
from vgpt.sampler import SamplerConfig, sigma_table
from vgpt.student import StudentSampler

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Weights dtypes ONNX Runtime's CPU provider has no kernels for (bfloat16: no MatMul, Add or Mul): their
# graphs are for TensorRT, verified by onnx.checker and their dtypes instead of a run against PyTorch.
ORT_CPU_UNRUNNABLE = ("bfloat16",)


@dataclass(frozen=True)
class ExportConfig:
    layouts: tuple[Layout, ...]
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    opset: int = 23
    dtype: str = "float32"  # model weights and KV cache; z, latents and frames stay fp32
    verify: bool = True
    # fp32 (weights in `dtype`), or fp8/int8: the transformer graphs quantized by the quantizer that
    # export_bundle is given (vgpt.calibration.quantizer.ModelOptQuantizer for the commands)
    precision: str = "fp32"
    # How the denoising step attends the KV cache: "concat", the cache and the clip's own keys joined into
    # one fused Attention (one copy of the cache per layer per step); "two_part", the two attended apart
    # and merged by one softmax (vgpt.kv_cache.two_part_attention: no copy, but decomposed attention).
    # Under ONNX Runtime's CPU provider "concat" is faster (docs/benchmarks.md: 146 against 193 ms a step).
    kv_attention: str = "concat"
    # A distilled student (vgpt.student): `sampler` is then its own (K steps at its table, one branch), and
    # the manifest records it (sampler.student: the table, the distilled guidance, `distilled_from`).
    student: StudentSampler | None = None

    @property
    def quantized(self) -> bool:
        return self.precision in QUANTIZED_PRECISIONS

    def __post_init__(self) -> None:
        if not self.layouts:
            raise ValueError("ExportConfig: give at least one layout")
        if self.opset not in SUPPORTED_OPSETS:
            raise ValueError(f"ExportConfig.opset={self.opset}: use one of {SUPPORTED_OPSETS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"ExportConfig.dtype={self.dtype!r}: use one of {sorted(DTYPES)}")
        if self.kv_attention not in ("concat", "two_part"):
            raise ValueError(f"ExportConfig.kv_attention={self.kv_attention!r}: use 'concat' or 'two_part'")
        if self.precision not in BUNDLE_PRECISIONS:
            raise ValueError(f"ExportConfig.precision={self.precision!r}: use one of {BUNDLE_PRECISIONS}")
        if self.student is not None and self.sampler != self.student.sampler():
            raise ValueError(f"ExportConfig.sampler={self.sampler} for a student that samples "
                             f"{self.student.sampler()}: pass sampler=student.sampler()")  # fmt: skip
        if self.quantized:
            if self.dtype != "float32":
                raise ValueError(f"--{self.precision} quantizes fp32 weights; leave --dtype at float32")
            if self.precision == "fp8" and self.opset < 19:
                raise ValueError(f"FP8 Q/DQ needs opset >= 19 (QuantizeLinear with FLOAT8E4M3FN); not {self.opset}")


def graph_files(path: Path) -> list[Path]:
    """The .onnx file and its external data file, if any."""
    data = path.with_name(path.name + ".data")
    return [path, data] if data.exists() else [path]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """torch -> numpy; bfloat16 (numpy has none) as ml_dtypes' bfloat16, the type onnx reads."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes  # onnx's own dependency

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def from_numpy(a: np.ndarray) -> torch.Tensor:
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def sample_inputs(spec: GraphSpec, layout: Layout, sampler: SamplerConfig, kv: torch.Tensor | None, seed: int):
    gen = torch.Generator().manual_seed(seed)
    feeds = []
    steps = (0, sampler.steps - 1) if spec.name == DENOISE else (None,)
    # The ring graph: the oldest frame in the first slot and in the last (its Gather wraps around).
    steps = (0, layout.history_frames - 1) if spec.name == RING else steps
    for step in steps:
        feed = {}
        for t in spec.inputs:
            if t.name in ("step", "oldest"):
                feed[t.name] = np.array([step], np.int64)
            elif t.name == "ring":
                feed[t.name] = to_numpy(torch.randn(t.shape, generator=gen).to(DTYPES[t.dtype]))
            elif t.name == "kv_cache":
                feed[t.name] = to_numpy(kv)
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
    quantizer: Quantizer | None = None,
    signing_key=None,
) -> BundleManifest:
    """Export, verify and describe every layout; returns the manifest. Nothing is left in `out` unless
    everything passed: the bundle is built in a temporary sibling folder and renamed at the end.

    fp8/int8 (`config.precision`) need the `quantizer` of that precision, which quantizes `model` in place
    (no second copy of the weights: the 3.8B model is 15 GB) and exports its transformer graphs as Q/DQ.
    `signing_key` (vgpt.export.signing.load_signing_key): also sign the manifest (signature.json)."""
    import onnx
    import onnxruntime

    _check_quantizer(config, quantizer)
    if quantizer is not None and exact_rolling(model.config):
        raise ValueError(f"export_bundle: {config.precision} quantization of a model with the lightweight mask "
                         "(GPDiT's frame and ring graphs) is not supported yet; export it at fp32 or --dtype "
                         "float16")  # fmt: skip
    out = Path(out)
    dtype = DTYPES[config.dtype]
    if any(p.dtype != dtype for p in model.parameters()):
        model = copy.deepcopy(model).to(dtype)  # Module.to casts in place: the caller's model keeps its dtype
    model = model.eval()
    weights_hash = content_hash(model.state_dict())
    quantization = None
    if quantizer is not None:
        quantization = quantizer.quantize(model, codec, config.layouts, config.sampler)
    codec_state = codec.state_dict() if isinstance(codec, torch.nn.Module) else {}
    started = time.perf_counter()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        layouts = [_export_layout(model, codec, layout, config, quantizer, tmp) for layout in config.layouts]
        manifest = BundleManifest(
            format_version=FORMAT_VERSION,
            model_config=model.config,
            rope_factor_set={layout_name(lay): select_factor_set(
                model.config, (lay.history_frames + lay.clip_frames) * lay.block - 1) for lay in config.layouts},
            sampler=SamplerRecord(config.sampler.steps, config.sampler.shift, config.sampler.guidance,
                                  tuple(sigma_table(config.sampler).tolist()), config.student),
            codec=CodecRecord(type(codec).__name__, codec.latent_channels, codec.downsample, codec.scaling_factor,
                              content_hash(codec_state) if codec_state else None),
            dtype=config.dtype,
            precision=config.precision,
            quantization=quantization,
            requires=Requirements.for_precision(config.precision),
            opset=config.opset,
            layouts=tuple(layouts),
            weights_sha256=weights_hash,
            sources=sources or {},
            versions={"vgpt": _vgpt_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                      "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
            environment=environment(),
            verified=config.verify,
            export_seconds=round(time.perf_counter() - started, 1),
        )  # fmt: skip
        # to_dict() adds the manifest's own hash: an edited manifest (say, another step count than the
        # graphs bake in) is refused at load. Written last: a folder without it is visibly incomplete.
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2))
        if signing_key is not None:
            sign_bundle(tmp, signing_key)
    return manifest


def _check_quantizer(config: ExportConfig, quantizer: Quantizer | None) -> None:
    """A quantized precision comes with a quantizer of that precision, and fp32 with none."""
    if quantizer is None:
        if config.quantized:
            raise ValueError(f"export_bundle: precision {config.precision!r} needs a quantizer: pass quantizer="
                             f"vgpt.calibration.quantizer.ModelOptQuantizer({config.precision!r})")  # fmt: skip
    elif quantizer.precision != config.precision:
        raise ValueError(f"export_bundle: the quantizer quantizes to {quantizer.precision!r} but "
                         f"ExportConfig.precision is {config.precision!r}; pass the same precision to both, or "
                         "no quantizer for fp32")  # fmt: skip


def environment() -> Environment:
    """The machine the export and its verification ran on: a verification figure (and a report of a
    failing one) depends on the CPU's kernels, so the manifest says which CPU that was."""
    flags: list[str] = []
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.split()
    # The instruction sets that pick ONNX Runtime's and PyTorch's CPU kernels.
    wanted = ("avx", "avx2", "fma", "f16c", "avx512", "amx", "vnni", "asimd", "sve", "dotprod", "bf16", "fp16", "i8mm")
    return Environment(
        platform.machine(),
        platform.system(),
        model,
        os.cpu_count(),
        tuple(sorted(f for f in flags if f.startswith(wanted))),
    )


def _vgpt_version() -> str:
    return vgpt.__version__


def _export_layout(model: VideoGPT, codec: LatentCodec, layout: Layout, config: ExportConfig,
                   quantizer: Quantizer | None, root: Path) -> LayoutRecord:  # fmt: skip
    specs = graph_specs(model.config, layout, config.dtype)
    folder = root / layout_name(layout)
    folder.mkdir()
    context = GraphContext(model, codec, layout, config.sampler, two_part=config.kv_attention == "two_part")
    modules = {name: build_graph(ENTRIES[name], context) for name in specs}  # this model's graphs only
    prefill = modules[PREFILL]
    history = torch.randn(specs[PREFILL].inputs[0].shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        kv = prefill(history)
    graphs, errors, readiness = {}, {}, {}
    for name, spec in specs.items():
        path = folder / spec.file
        args = tuple(from_numpy(v) for v in sample_inputs(spec, layout, config.sampler, kv, 0)[0].values())
        log.info("exporting %s/%s", folder.name, spec.file)
        qdq = quantizer if quantizer is not None and ENTRIES[name].transformer else None
        # Quantized graphs export (and are verified) with the model's quantizers computing through the
        # op that becomes their Q/DQ pair: the same saturation as the graph on inputs beyond the
        # calibrated range (ModelOpt's INT8 fake quantization saturates at -127, ONNX's at -128).
        # Verification feeds the eager side the graph's codes: see vgpt.calibration.verify for why.
        with _through_qdq(model, qdq):
            export_onnx(modules[name], spec, args, path, config.opset, qdq.translation_table() if qdq else None)
        if qdq is not None:
            log.info("  %s: %d weights stored quantized", name, qdq.fold_weights(path))
        if config.verify and config.dtype in ORT_CPU_UNRUNNABLE:
            check_model(path)
            check_dtypes(path, spec, config.dtype if ENTRIES[name].transformer else "float32")
        elif config.verify:
            check_model(path)
            atol, rtol = ENTRIES[name].tolerance[config.dtype]
            feeds = sample_inputs(spec, layout, config.sampler, kv, 2)
            with _through_qdq(model, qdq):
                if qdq is not None:
                    result = qdq.compare_with_eager(path, modules[name], model, spec, feeds, atol, rtol)
                else:
                    result = compare_with_eager(path, modules[name], spec, feeds, atol, rtol,
                                                basic_optimization=config.quantized)  # fmt: skip
            errors[name] = result
            for e in result:
                log.info("  %s %s", name, e)
            if not all(e.passed for e in result):
                failed = "; ".join(str(e) for e in result if not e.passed)
                hint = ("a larger calibration set (--calib-count) or --policy mlp" if qdq is not None
                        else "--opset 18, or report it with this line")  # fmt: skip
                raise VerificationError(f"{folder.name}/{spec.file}: ONNX Runtime disagrees with PyTorch on {failed}; "
                                        f"no bundle was written. Try {hint}; --no-verify skips the check")  # fmt: skip
        readiness[name] = check_graph(path, name)
        ready = readiness[name]
        graphs[name] = GraphRecord(
            spec=spec,
            files={p.name: FileRecord(p.stat().st_size, sha256_file(p)) for p in graph_files(path)},
            nodes=ready.nodes,
            ops=ready.ops,
            tensorrt=TensorRTReadiness(ready.ready, ready.min_tensorrt, tuple(ready.unsupported)),
            verification=tuple(e.to_dict() for e in errors.get(name, [])),
        )
    return LayoutRecord(folder.name, layout, graphs, binding_plan(specs, layout))


def _through_qdq(model: VideoGPT, quantizer: Quantizer | None):
    return quantizer.through_qdq(model) if quantizer is not None else contextlib.nullcontext()
