"""The GPU check: `python -m vgpt.engines.gpu_check` (or `scripts/gpu_check.sh`) on a machine with CUDA
and TensorRT. For the bundled model it exports fp32, FP8 (where the GPU has it) and INT8 bundles,
builds engines (fp16 from fp32, and the strongly typed FP8/INT8 builds), compares every engine with
ONNX Runtime on the same inputs through Polygraphy, runs the TensorRT backend against the ONNX Runtime
backend on the same clip and noise, and prints per-step and per-clip latency and host overhead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vgpt.calibration.quantizer import ModelOptQuantizer
from vgpt.calibration.report import psnr
from vgpt.checkpoint import load_checkpoint
from vgpt.codecs import load_codec
from vgpt.default_model import default_model
from vgpt.engines.build import build_bundle, gpu_identity, import_tensorrt
from vgpt.engines.decisions import FP8_MIN_CAPABILITY, PLAN_FILES
from vgpt.evaluation import layout_clips
from vgpt.export.bundle import ExportConfig, export_bundle, sample_inputs
from vgpt.export.contract import QUANTIZED_PRECISIONS
from vgpt.export.manifest import load_bundle
from vgpt.export.verify import ort_session
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
    gpu, capability = gpu_identity()
    out = Path(out)
    default = default_model()
    sampler = default.sampler()
    major, minor = (int(x) for x in trt.__version__.split(".")[:2])
    opset = 23 if (major, minor) >= (10, 15) else 18
    print(f"GPU {gpu} (sm {capability[0]}{capability[1]}), TensorRT {trt.__version__}, opset {opset}")
    results = []
    for precision in precisions:
        if precision == "fp8" and tuple(capability) < FP8_MIN_CAPABILITY:
            print(f"skip fp8: {gpu} has no FP8")
            continue
        source = "fp32" if precision in ("fp16", "bf16") else precision
        bundle_dir = out / f"bundle-{source}"
        model = load_checkpoint(default.model_dir).model
        layout = default.layout(model.config)
        if not bundle_dir.exists():
            quantizer = ModelOptQuantizer(source) if source in QUANTIZED_PRECISIONS else None
            export_bundle(model, load_codec(default.codec_dir), bundle_dir,
                          ExportConfig(layouts=(layout,), sampler=sampler, opset=opset, precision=source),
                          quantizer=quantizer)  # fmt: skip
        engines = out / f"engines-{precision}"
        build_bundle(bundle_dir, engines, precision, overwrite=True)
        entry = load_bundle(bundle_dir).layout()
        kv = None
        for graph in ("encoder", "prefill", "denoise", "decoder"):
            spec = entry.spec(graph)
            if graph == "denoise":
                kv = np.zeros(spec.tensor("kv_cache").shape, np.float32) if kv is None else kv
            feeds = sample_inputs(spec, layout, sampler, torch.from_numpy(kv) if kv is not None else None, 5)
            results.append(_compare(engines / PLAN_FILES[graph], entry.path(graph), spec, feeds, precision))
            print(json.dumps(results[-1]))
        # TensorRT backend against the ONNX Runtime backend: same clips, same noise.
        clip_list, _ = layout_clips(layout, clips)
        trt_backend, ort_backend = TensorRTBackend(engines, bundle_dir), OrtBackend(load_bundle(bundle_dir))
        _, pred_t, _ = predict_clips(trt_backend, clip_list, seed=0)
        _, pred_o, _ = predict_clips(ort_backend, clip_list, seed=0)
        agreement = min(psnr(a, b) for a, b in zip(pred_t, pred_o, strict=True))
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
            trt_backend._graph.replay()
            end.record()
        end.synchronize()
        gpu_clip = start.elapsed_time(end) / 1000
        timing = {"precision": precision, "psnr_trt_vs_ort_db_min": agreement, "per_clip_ms": per_clip * 1e3,
                  "per_step_ms": gpu_clip / sampler.steps * 1e3, "gpu_clip_ms": gpu_clip * 1e3,
                  "host_overhead": (per_clip - gpu_clip) / per_clip, "passed": agreement > 30}  # fmt: skip
        results.append(timing)
        print(json.dumps(timing))
        trt_backend.close()
    (out / "gpu-check.json").write_text(json.dumps(results, indent=2))
    return results


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
