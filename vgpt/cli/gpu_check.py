"""The GPU check: `python -m vgpt.cli.gpu_check` (or `scripts/gpu_check.sh`) on a machine with CUDA
and TensorRT. For the bundled model it exports the bundles each precision needs on this TensorRT
(`vgpt.engines.settings.source_bundle` and `export_opset`: fp16 from an fp32 bundle on TensorRT 10, from
a float16 bundle on 11; FP8 and INT8 Q/DQ bundles, FP8 where the GPU and the parser take it), builds
engines, compares every engine with ONNX Runtime on the same inputs through Polygraphy, runs the
TensorRT backend against the ONNX Runtime backend on the same clip and noise, and prints per-step and
per-clip latency and host overhead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vgpt.calibration.quantizer import ModelOptQuantizer
from vgpt.checkpoint import load_checkpoint
from vgpt.codecs import load_codec
from vgpt.default_model import default_model
from vgpt.engines.build import build_bundle, gpu_identity, import_tensorrt
from vgpt.engines.manifest import PLAN_FILES
from vgpt.engines.settings import export_opset, parse_tensorrt_version, source_bundle
from vgpt.evaluation import layout_clips
from vgpt.export.bundle import ORT_CPU_UNRUNNABLE, ExportConfig, export_bundle, sample_inputs
from vgpt.export.contract import FP8_MIN_CAPABILITY, QUANTIZED_PRECISIONS
from vgpt.export.manifest import load_bundle
from vgpt.export.verify import ort_session
from vgpt.metrics import psnr
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.backends.trt_backend import TensorRTBackend
from vgpt.runtime.evaluate import predict_clips

# Engine against ONNX Runtime (fp32 CPU), per engine precision: fp16 engines round every matmul to
# ~1e-3 relative and a denoising step adds that up over two guidance branches; FP8/INT8 engines run the
# same Q/DQ arithmetic as ONNX Runtime, but TensorRT fuses and reorders the matmuls, so a value can
# round to the neighbouring code (one FP8 step is 1/16 of the value).
TOLERANCES = {"fp16": (5e-2, 5e-2), "bf16": (1e-1, 1e-1), "fp8": (1e-1, 1e-1), "int8": (1e-1, 1e-1)}


def _compare(engine_path: Path, onnx_path: Path, spec, feeds, precision: str) -> dict:
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner
    from polygraphy.comparator import Comparator, CompareFunc

    atol, rtol = TOLERANCES[precision]
    quantized = precision in ("fp8", "int8")
    runners = [TrtRunner(EngineFromBytes(engine_path.read_bytes())),
               OnnxrtRunner(lambda: ort_session(onnx_path, basic_optimization=quantized))]  # fmt: skip
    results = Comparator.run(runners, data_loader=feeds)
    ok = bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=atol, rtol=rtol)))
    return {"graph": spec.name, "precision": precision, "atol": atol, "rtol": rtol, "passed": ok}


def gpu_check(out: str | Path, precisions: tuple[str, ...] = ("fp16", "fp8", "int8"), clips: int = 4) -> list[dict]:
    trt = import_tensorrt()
    version = parse_tensorrt_version(trt.__version__)
    gpu, capability = gpu_identity()
    out = Path(out)
    default = default_model()
    sampler = default.sampler()
    print(f"GPU {gpu} (sm {capability[0]}{capability[1]}), TensorRT {trt.__version__}")
    results = []
    for precision in precisions:
        if precision == "fp8" and tuple(capability) < FP8_MIN_CAPABILITY:
            print(f"skip fp8: {gpu} has no FP8")
            continue
        opset = export_opset(version, precision)
        if opset is None:
            print(f"skip {precision}: FP8 Q/DQ needs opset >= 19, which vgpt exports as opset 23, and TensorRT "
                  f"{trt.__version__} parses opset 23 from 10.15 on; use TensorRT >= 10.15 for fp8")  # fmt: skip
            continue
        source, dtype = source_bundle(precision, version)
        model = load_checkpoint(default.model_dir).model
        layout = default.layout(model.config)
        bundle_dir = _bundle(out, model, default, layout, sampler, source, dtype, opset)
        # bfloat16 graphs do not run under ONNX Runtime's CPU provider: the fp32 bundle is their reference.
        runnable = dtype not in ORT_CPU_UNRUNNABLE
        reference_dir = (bundle_dir if runnable
                         else _bundle(out, model, default, layout, sampler, "fp32", "float32", opset))  # fmt: skip
        engines = out / f"engines-{precision}"
        build_bundle(bundle_dir, engines, precision, overwrite=True)
        entry = load_bundle(bundle_dir).layout()
        if runnable:
            kv = None
            for graph in ("encoder", "prefill", "denoise", "decoder"):
                spec = entry.spec(graph)
                if graph == "denoise":
                    kv = np.zeros(spec.tensor("kv_cache").shape, spec.tensor("kv_cache").dtype) if kv is None else kv
                feeds = sample_inputs(spec, layout, sampler, torch.from_numpy(kv) if kv is not None else None, 5)
                results.append(_compare(engines / PLAN_FILES[graph], entry.path(graph), spec, feeds, precision))
                print(json.dumps(results[-1]))
        else:
            print(f"{precision}: no per-graph comparison (ONNX Runtime's CPU provider has no {dtype} kernels); "
                  "the backends are compared against the fp32 bundle")  # fmt: skip
        # TensorRT backend against the ONNX Runtime backend: same clips, same noise.
        clip_list, _ = layout_clips(layout, clips)
        trt_backend, ort_backend = TensorRTBackend(engines, bundle_dir), OrtBackend(load_bundle(reference_dir))
        _, pred_t, _ = predict_clips(trt_backend, clip_list, seed=0)
        _, pred_o, _ = predict_clips(ort_backend, clip_list, seed=0)
        agreement = min(float(psnr(a, b, peak_to_peak=2, frame_axis=None)) for a, b in zip(pred_t, pred_o, strict=True))
        # Latency: per clip (CUDA graph replay incl. copies), per step (plain enqueue loop), host overhead.
        z = np.random.default_rng(0).standard_normal(entry.spec("denoise").tensor("z").shape).astype(np.float32)
        trt_backend.denoise(z)
        reps = 20
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            trt_backend.denoise(z)
        per_clip = (time.perf_counter() - t0) / reps
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(trt_backend.cuda_stream):
            start.record()
            trt_backend.launch()  # resets the step index, as every clip does, then replays
            end.record()
        end.synchronize()
        gpu_clip = start.elapsed_time(end) / 1000
        timing = {"precision": precision, "psnr_trt_vs_ort_db_min": agreement, "per_clip_ms": per_clip * 1e3,
                  "per_step_ms": gpu_clip / sampler.steps * 1e3, "gpu_clip_ms": gpu_clip * 1e3,
                  "host_overhead": (per_clip - gpu_clip) / per_clip, "cuda_graph": trt_backend.captured,
                  "passed": agreement > 30}  # fmt: skip
        results.append(timing)
        print(json.dumps(timing))
        trt_backend.close()
    (out / "gpu-check.json").write_text(json.dumps(results, indent=2))
    return results


def _bundle(out: Path, model, default, layout, sampler, precision: str, dtype: str, opset: int) -> Path:
    """The bundle of this precision, weights dtype and opset under `out`, exported once."""
    bundle_dir = out / f"bundle-{precision}-{dtype}-opset{opset}"
    if not bundle_dir.exists():
        quantizer = ModelOptQuantizer(precision) if precision in QUANTIZED_PRECISIONS else None
        config = ExportConfig(layouts=(layout,), sampler=sampler, opset=opset, dtype=dtype, precision=precision)
        export_bundle(model, load_codec(default.codec_dir), bundle_dir, config, quantizer=quantizer)
    return bundle_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="gpu-check")
    parser.add_argument("--precision", action="append", choices=["fp16", "bf16", "fp8", "int8"])
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    results = gpu_check(args.out, tuple(args.precision or ("fp16", "fp8", "int8")), args.clips)
    failed = [r for r in results if not r["passed"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
