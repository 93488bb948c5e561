"""vgpt-bench's main sections: speed and memory side by side, in one run, on whatever machine it runs.

Everything is measured here, in this process: per predicted clip the released-style `full` predictor
against our cached one (same backend: PyTorch eager); per graph PyTorch eager against ONNX Runtime;
precisions and bundles side by side under ONNX Runtime (by default the model exported at fp32 and
INT8, or the `bundles` named), each step against this CPU's large-GEMM throughput measured in the same
run; the host overhead of the ONNX Runtime denoising loop; time per clip as the history grows; peak
RSS. Each timing is the median of `repeats` runs after `warmup` runs, reported with its spread.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vgpt
from vgpt import metrics
from vgpt.atomic import atomic_file
from vgpt.calibration.data import CalibrationConfig
from vgpt.calibration.quantize import require_modelopt
from vgpt.calibration.quantizer import ModelOptQuantizer
from vgpt.checkpoint import content_hash
from vgpt.cli.bench.timing import BenchConfig, Timing, bench_network, current_rss_mib, measure, peak_rss_mib
from vgpt.codecs import LightCodec
from vgpt.commands import torch_threads
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.export.manifest import BundleError, load_bundle
from vgpt.layout import Layout
from vgpt.metrics import relative_error
from vgpt.model import VideoGPT
from vgpt.plotting import pyplot
from vgpt.predictors import CachedPredictor, FullPredictor
from vgpt.runtime.backends.ort_backend import OrtBackend, session_options
from vgpt.runtime.predictor import load_predictor
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video

log = logging.getLogger(__name__)


def _clip_times(model, layout: Layout, sampler: SamplerConfig, repeats: int, warmup: int, seed: int):
    C = model.config.latent_channels
    history = torch.randn(1, layout.history_frames, C, layout.latent_height, layout.latent_width,
                          generator=torch.Generator().manual_seed(seed))  # fmt: skip
    out = {}
    for name, cls in (("full", FullPredictor), ("cached", CachedPredictor)):
        predictor = cls(model, sampler, window=layout.history_frames)
        out[name] = measure(
            lambda p=predictor: p.predict(history, 1, layout.clip_frames, torch.Generator().manual_seed(seed)),
            repeats, warmup,
        )  # fmt: skip
    return out


def _bench_inputs(C: int, layout: Layout, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """History latents [1, M, C, h, w] and noise [1, G, C, h, w], the same for every backend."""
    gen = torch.Generator().manual_seed(seed)
    M, G, h, w = layout.history_frames, layout.clip_frames, layout.latent_height, layout.latent_width
    return torch.randn(1, M, C, h, w, generator=gen), torch.randn(1, G, C, h, w, generator=gen)


def _graph_times(model, layout: Layout, sampler: SamplerConfig, config: BenchConfig) -> dict[str, Any]:
    """Prefill and one denoising step in PyTorch eager (the graph modules ONNX Runtime runs exported)."""
    history, z = _bench_inputs(model.config.latent_channels, layout, config.seed)
    prefill, denoise = PrefillGraph(model, layout, sampler), DenoiseGraph(model, layout, sampler)
    with torch.no_grad():
        kv = prefill(history)
        step = torch.tensor([sampler.steps // 2])
        torch_prefill = measure(lambda: prefill(history), config.repeats, config.warmup, "PyTorch prefill")
        torch_step = measure(lambda: denoise(z, kv, step), config.repeats * 3, config.warmup, "PyTorch step")
    return {"torch": {"prefill": torch_prefill, "denoise_step": torch_step}}


# --- ONNX Runtime: bundles side by side, against this CPU's GEMM throughput ----------------------------


def step_flops(config, layout: Layout, guided: bool) -> dict[str, float]:
    """Multiply-adds x 2 of one denoising step's transformer: "linear" (the decoder layers' projections
    and MLP, what INT8 quantizes) and "attention" (scores and weighted values, always float). The
    embedders and the output head add under 1 % at our sizes and are left out."""
    c = config
    D, mlp, hd = c.hidden_size, c.intermediate_size, c.head_dim
    per_token = D * (c.num_attention_heads + 2 * c.num_key_value_heads) * hd + c.num_attention_heads * hd * D
    per_token += D * 2 * mlp + mlp * D
    clip = layout.clip_frames * layout.block
    branches = [(clip, layout.history_frames * layout.block + clip)] + ([(clip, clip)] if guided else [])
    linear = sum(2 * n * per_token for n, _ in branches) * c.num_hidden_layers
    attention = sum(2 * 2 * n * keys * c.num_attention_heads * hd for n, keys in branches) * c.num_hidden_layers
    return {"linear": float(linear), "attention": float(attention)}


def gemm_peak(size: int, threads: int | None, repeats: int) -> dict[str, Any]:
    """This CPU's throughput on one large square product under ONNX Runtime's CPU kernels, fp32
    (MatMul) and int8 (MatMulInteger, uint8 x int8 as the INT8 bundles' fused kernels run it): the best
    of `repeats` runs after one warm-up, in GFLOP/s (int8: GOP/s)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n = size
    graphs = {
        "fp32": (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)),
        "int8": (rng.integers(0, 256, (n, n), dtype=np.uint8), rng.integers(-127, 128, (n, n), dtype=np.int8)),
    }
    out = {"size": [n, n, n]}
    for name, (a, b) in graphs.items():
        elem = TensorProto.FLOAT if name == "fp32" else TensorProto.UINT8
        inits = [numpy_helper.from_array(b, "b")]
        if name == "fp32":
            node = helper.make_node("MatMul", ["a", "b"], ["y"])
            y_type = TensorProto.FLOAT
        else:
            inits += [numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
                      numpy_helper.from_array(np.array(0, np.int8), "b_zero")]  # fmt: skip
            node = helper.make_node("MatMulInteger", ["a", "b", "a_zero", "b_zero"], ["y"])
            y_type = TensorProto.INT32
        graph = helper.make_graph([node], f"gemm_{name}", [helper.make_tensor_value_info("a", elem, [n, n])],
                                  [helper.make_tensor_value_info("y", y_type, [n, n])], inits)  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        session = ort.InferenceSession(model.SerializeToString(), session_options("fp32", threads),
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        timing = measure(lambda s=session, x=a: s.run(None, {"a": x}), max(repeats, 3), 1)
        out[f"{name}_gflops"] = 2 * n**3 / min(timing.runs) / 1e9
    return out


def fraction_of_peak(flops: dict[str, float], seconds: float, precision: str, peak: dict[str, Any]) -> float:
    """The step's time at this CPU's GEMM peak over its measured time: its projections at the int8 peak
    for INT8 bundles (fp32 otherwise; the CPU runs fp16 and FP8 graphs in fp32), attention at fp32's."""
    linear_peak = peak["int8_gflops"] if precision == "int8" else peak["fp32_gflops"]
    ideal = flops["linear"] / (linear_peak * 1e9) + flops["attention"] / (peak["fp32_gflops"] * 1e9)
    return ideal / seconds


def time_bundle(path: str | Path, config: BenchConfig, threads: int | None = None,
                spin: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """One bundle under ONNX Runtime: prefill, one bound denoising step, one clip (prefill and S steps),
    and the host overhead of the loop (the share of it spent outside ONNX Runtime's run calls).
    `threads`/`spin`: intra-op threads (default: the bench's) and whether idle pool threads spin."""

    bundle = load_bundle(path)
    backend = OrtBackend(bundle, threads=threads or config.threads, spin=spin)
    layout = backend.layout
    history, z = (t.numpy() for t in _bench_inputs(bundle.model_config.latent_channels, layout,
                                                   config.seed))  # fmt: skip
    backend.prefill(history)
    prefill = measure(lambda: backend.prefill(history), config.repeats, config.warmup, f"{path} prefill")
    step = measure(backend.step_once, config.repeats * 3, config.warmup, f"{path} step")
    clip = measure(lambda: (backend.prefill(history), backend.denoise(z)), config.repeats, config.warmup)
    fractions = []
    for _ in range(config.repeats):
        _, inside, total = backend.denoise_timed(z)
        fractions.append((total - inside) / total)
    guided = bundle.sampler.guided
    flops = step_flops(bundle.model_config, layout, guided)
    return {"path": str(path), "precision": backend.precision, "layout": layout.to_dict(),
            "weights_sha256": bundle.manifest.weights_sha256, "steps": backend.steps, "step_flops": flops,
            "prefill": prefill, "denoise_step": step, "per_clip": clip,
            "host_overhead_fraction": statistics.median(fractions)}  # fmt: skip


def op_shares(events: list[dict[str, Any]], skip_runs: int = 0) -> dict[str, float]:
    """The share of kernel time per op type, from the events of an ONNX Runtime profile (its JSON),
    largest first, leaving out the kernels of the first `skip_runs` runs (the warm-up: the first run of a
    session allocates its buffers and packs its weights, and would weigh as several)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e.get("ts", 0))  # fmt: skip
    if skip_runs >= len(runs) > 0:
        raise ValueError(f"the profile holds {len(runs)} runs: none is left after skipping {skip_runs}")
    start = runs[skip_runs].get("ts", 0) if skip_runs else float("-inf")
    times: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e.get("ts", 0) >= start:
            op = e["args"]["op_name"]
            times[op] = times.get(op, 0.0) + e["dur"]
    total = sum(times.values())
    if not total:
        raise ValueError("the profile holds no kernel time: was the session run with profiling enabled?")
    return {op: t / total for op, t in sorted(times.items(), key=lambda kv: -kv[1])}


def profile_step(path: str | Path, config: BenchConfig) -> dict[str, float]:
    """Each op type's share of a bundle's denoising step, from ONNX Runtime's profiler (the session options
    the backend runs the bundle with, `config.repeats * 3` steps after `config.warmup` unprofiled ones in the
    same session)."""
    import onnxruntime as ort

    from vgpt.export.spec import DENOISE

    bundle = load_bundle(path)
    entry = bundle.layout(None)
    spec = entry.graphs[DENOISE].spec
    gen = np.random.default_rng(config.seed)
    feeds = {t.name: np.array([1], np.int64) if t.name == "step" else gen.standard_normal(t.shape).astype(t.dtype)
             for t in spec.inputs}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vgpt-profile-") as tmp:
        options = session_options(bundle.precision, config.threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "denoise")
        session = ort.InferenceSession(str(entry.path(DENOISE)), options, providers=["CPUExecutionProvider"])
        warmup = max(config.warmup, 1)
        for _ in range(warmup + config.repeats * 3):
            session.run(None, feeds)
        return op_shares(json.loads(Path(session.end_profiling()).read_text()), skip_runs=warmup)


def _thread_settings(named: dict[str, Path], config: BenchConfig) -> list[dict[str, Any]]:
    """Each bundle's step and clip at 1 .. cores intra-op threads, with idle threads spinning or sleeping
    (the settings a real-time loop chooses between)."""

    rows = []
    for name, path in named.items():
        for threads in range(1, (os.cpu_count() or 1) + 1):
            for spin in (True, False):
                log.info("threads: %s at %d threads, spinning %s", name, threads, spin)
                t = time_bundle(path, config, threads, spin)
                keep = ("denoise_step", "per_clip", "host_overhead_fraction")
                rows.append({"bundle": name, "threads": threads, "spin": spin, **{k: t[k] for k in keep}})
    return rows


def export_precisions(model: VideoGPT, layout: Layout, sampler: SamplerConfig, config: BenchConfig,
                      root: Path) -> dict[str, Path]:  # fmt: skip
    """The bench's model exported at each of `config.precisions` (unverified: only speed is measured
    here). Quantization and fp16 change a model in place, so each of those exports takes a copy."""

    paths = {}
    for precision in config.precisions:
        log.info("exporting the model at %s", precision)
        quantized = precision in ("int8", "fp8")
        export = ExportConfig(layouts=(layout,), sampler=sampler, verify=False,
                              precision=precision if quantized else "fp32",
                              dtype="float16" if precision == "fp16" else "float32")  # fmt: skip
        calibration = CalibrationConfig(count=config.calibration_clips, levels=2)
        quantizer = ModelOptQuantizer(precision, calibration=calibration, progress=False) if quantized else None
        net = model if precision == "fp32" else copy.deepcopy(model)
        # The codec graphs are not timed here; any codec of the right shape serves the export.
        export_bundle(net, LightCodec().eval(), root / precision, export, quantizer=quantizer)
        paths[precision] = root / precision
    return paths


def _onnx_times(model: VideoGPT, layout: Layout, sampler: SamplerConfig, config: BenchConfig,
                torch_step: Timing, tmp: Path) -> dict[str, Any]:  # fmt: skip

    if config.bundles:
        named = {str(p): Path(p) for p in config.bundles}
    else:
        named = export_precisions(model, layout, sampler, config, tmp)
    bundles = {}
    for name, path in named.items():
        log.info("ONNX Runtime: %s", name)
        bundles[name] = time_bundle(path, config)
    layouts = {json.dumps(b["layout"], sort_keys=True) for b in bundles.values()}
    if len(layouts) > 1:
        raise BundleError(f"vgpt-bench compares bundles at one layout; these have {len(layouts)}: "
                          f"{sorted(layouts)}")  # fmt: skip
    if config.thread_settings:
        out_threads = _thread_settings(named, config)
    if config.profile:
        for name, path in named.items():
            log.info("profiling the denoising step of %s", name)
            bundles[name]["profile"] = profile_step(path, config)
    peak = gemm_peak(config.gemm_size, config.threads, config.repeats)
    for b in bundles.values():
        b["achieved_gflops"] = sum(b["step_flops"].values()) / 1e9 / b["denoise_step"].median
        b["fraction_of_gemm_peak"] = fraction_of_peak(b["step_flops"], b["denoise_step"].median, b["precision"], peak)
    fractions = {name: b["fraction_of_gemm_peak"] for name, b in bundles.items()}
    out: dict[str, Any] = {"bundles": bundles, "gemm_peak": peak, "fraction_of_gemm_peak": fractions}
    if config.thread_settings:
        out["thread_settings"] = out_threads
    by_precision = {b["precision"]: b for b in bundles.values()}
    fp32, int8 = by_precision.get("fp32"), by_precision.get("int8")
    if fp32 and int8:
        out["int8_vs_fp32_step"] = fp32["denoise_step"].median / int8["denoise_step"].median
    # PyTorch eager ran the bench's model at the bench's layout: compare with an fp32 bundle of the same.
    same = fp32 and fp32["layout"] == layout.to_dict() and fp32["weights_sha256"] == content_hash(model.state_dict())
    if same:
        out["onnxruntime"] = {k: fp32[k] for k in ("prefill", "denoise_step", "per_clip")}
        out["ort_vs_torch_step"] = torch_step.median / fp32["denoise_step"].median
        out["host_overhead_fraction"] = fp32["host_overhead_fraction"]
    elif fp32 is None:
        log.info("no fp32 bundle among those timed: no ONNX Runtime vs PyTorch figure")
    if config.cpp:
        if fp32 is None:
            raise ValueError("--cpp times the C++ runtime on an fp32 bundle; none was timed")
        from vgpt.cli.bench.cpp import compare_cpp

        log.info("C++ runtime against the Python runtime on %s", fp32["path"])
        out["cpp"] = compare_cpp(config.cpp, fp32["path"], clips=config.repeats, threads=config.threads)
    return out


def run_live(config: BenchConfig) -> dict[str, Any]:
    """`vgpt-bench --live`: the live-stream section alone (vgpt.cli.bench.live)."""
    from vgpt.cli.bench.live import BUNDLED_LAYOUT, live_costs
    from vgpt.config import ConfigError
    from vgpt.export.spec import exact_rolling

    torch_threads(config.threads)
    videogpt, gpdit = bench_network(config.model), bench_network(config.gpdit_model)
    if exact_rolling(videogpt.config) or not exact_rolling(gpdit.config):
        v, g = videogpt.config, gpdit.config
        raise ConfigError(f"vgpt-bench --live compares a Video-GPT model (--model; {v.name} has the "
                          f"{v.attention_mask} mask) with a GPDiT one of the lightweight mask (--gpdit-model; "
                          f"{g.name} has the {g.attention_mask} mask)")  # fmt: skip
    layouts = [BUNDLED_LAYOUT, (config.history, config.clip, config.latent)]
    layouts += [(M, G, config.latent) for M, G in config.extra_layouts]
    layouts = list(dict.fromkeys(layouts))
    sampler = SamplerConfig(steps=config.steps, guidance=config.guidance)
    report: dict[str, Any] = {
        "settings": {**asdict(config), "model_name": videogpt.config.name,
                     "parameters": videogpt.config.num_parameters(), "gpdit_parameters": gpdit.config.num_parameters()},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": torch.get_num_threads(), "python": platform.python_version()},
        "versions": _versions(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vgpt-bench-live-") as tmp:
        report["live"] = live_costs(videogpt, gpdit, layouts, sampler, config, Path(tmp))
    report["memory"] = {"peak_rss_mib": peak_rss_mib(), "current_rss_mib": current_rss_mib()}
    return report


def run_bench(config: BenchConfig) -> dict[str, Any]:
    if config.live:
        return run_live(config)
    if config.onnx and not config.bundles and not config.students_only and {"int8", "fp8"} & set(config.precisions):
        require_modelopt()  # before minutes of timing: INT8/FP8 exports need ModelOpt
    torch_threads(config.threads)
    model = bench_network(config.model)
    mc = model.config
    sampler = SamplerConfig(steps=config.steps, guidance=config.guidance)
    h, w = config.latent
    layouts = [(config.history, config.clip), *config.extra_layouts]
    report: dict[str, Any] = {
        "settings": {**asdict(config), "model_name": mc.name, "parameters": mc.num_parameters()},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": torch.get_num_threads(), "python": platform.python_version()},
        "versions": _versions(),
        "per_clip": [],
    }  # fmt: skip
    if config.student_steps or config.student:
        from vgpt.cli.bench.students import student_vs_teacher

        with tempfile.TemporaryDirectory(prefix="vgpt-bench-students-") as tmp:
            report["students"] = student_vs_teacher(config, model, Path(tmp))
        if config.students_only:
            report["memory"] = {"peak_rss_mib": peak_rss_mib(), "current_rss_mib": current_rss_mib()}
            return report
    for M, G in layouts:
        layout = Layout.for_model(mc, M, G, h, w)
        log.info("per clip: history %d, clip %d, %d steps", M, G, sampler.steps)
        times = _clip_times(model, layout, sampler, config.repeats, config.warmup, config.seed)
        report["per_clip"].append({"history": M, "clip": G, "tokens_per_frame": layout.block, **times,
                                   "speedup": times["full"].median / times["cached"].median})  # fmt: skip
    report["speedup_cached_vs_full"] = report["per_clip"][0]["speedup"]
    log.info("per graph: PyTorch eager")
    layout = Layout.for_model(mc, config.history, config.clip, h, w)
    graphs = _graph_times(model, layout, sampler, config)
    report["per_graph"] = graphs
    if config.onnx:
        with tempfile.TemporaryDirectory(prefix="vgpt-bench-") as tmp:
            onnx = _onnx_times(model, layout, sampler, config, graphs["torch"]["denoise_step"], Path(tmp))
        if "onnxruntime" in onnx:
            graphs["onnxruntime"] = onnx.pop("onnxruntime")
        report.update(onnx)
    scaling_sampler = SamplerConfig(steps=config.scaling_steps, guidance=config.guidance)
    scaling = {"history": list(config.scaling_histories), "full": [], "cached": [], "steps": config.scaling_steps}
    for M in config.scaling_histories:
        log.info("scaling: history %d", M)
        times = _clip_times(model, Layout.for_model(mc, M, config.clip, h, w), scaling_sampler, config.repeats,
                            config.warmup, config.seed)  # fmt: skip
        scaling["full"].append(times["full"].median)
        scaling["cached"].append(times["cached"].median)
    report["scaling"] = scaling
    if config.drift:
        log.info("rolling KV cache drift")
        report["rolling_drift"] = rolling_drift(config.model)
    report["memory"] = {"peak_rss_mib": peak_rss_mib(), "current_rss_mib": current_rss_mib()}
    return report


def _versions() -> dict[str, str]:

    out = {"vgpt": vgpt.__version__, "torch": torch.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out


def to_jsonable(obj):
    if isinstance(obj, Timing):
        return asdict(obj)
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def table(report: dict[str, Any]) -> str:
    """The terminal / markdown table."""
    if "live" in report:
        from vgpt.cli.bench.live import live_table

        return "\n".join([*live_table(report["live"]), "", f"peak RSS {report['memory']['peak_rss_mib']:.0f} MiB"])
    rows = ["| measure | value |", "|---|---|"]
    if "students" in report:
        from vgpt.cli.bench.students import student_table

        rows += student_table(report["students"])
    if "per_graph" not in report:  # --students-only
        rows.append(f"| peak RSS | {report['memory']['peak_rss_mib']:.0f} MiB |")
        return "\n".join(rows)
    for entry in report["per_clip"]:
        rows.append(f"| per clip, history {entry['history']}, clip {entry['clip']}: full | "
                    f"{entry['full'].median:.3f} s (spread {entry['full'].spread:.3f}) |")  # fmt: skip
        rows.append(f"| per clip, history {entry['history']}, clip {entry['clip']}: cached | "
                    f"{entry['cached'].median:.3f} s (spread {entry['cached'].spread:.3f}) |")  # fmt: skip
        rows.append(f"| speed-up cached vs full | {entry['speedup']:.2f}x |")
    g = report["per_graph"]
    rows.append(f"| prefill: PyTorch eager | {g['torch']['prefill'].median * 1000:.1f} ms |")
    rows.append(f"| denoising step: PyTorch eager | {g['torch']['denoise_step'].median * 1000:.2f} ms |")
    if "onnxruntime" in g:
        rows.append(f"| prefill: ONNX Runtime | {g['onnxruntime']['prefill'].median * 1000:.1f} ms |")
        rows.append(f"| denoising step: ONNX Runtime | {g['onnxruntime']['denoise_step'].median * 1000:.2f} ms |")
        rows.append(f"| ONNX Runtime vs PyTorch, denoising step | {report['ort_vs_torch_step']:.2f}x |")
        rows.append(f"| host overhead of the ONNX Runtime loop | {report['host_overhead_fraction'] * 100:.2f} % |")
    if "bundles" in report:
        peak = report["gemm_peak"]
        rows.append(f"| GEMM peak of this CPU ({'x'.join(map(str, peak['size']))}, ONNX Runtime) | fp32 "
                    f"{peak['fp32_gflops']:.1f} GFLOP/s, int8 {peak['int8_gflops']:.1f} GOP/s |")  # fmt: skip
        for name, b in report["bundles"].items():
            rows.append(f"| {name} ({b['precision']}): prefill / step / clip | {b['prefill'].median * 1000:.1f} ms / "
                        f"{b['denoise_step'].median * 1000:.2f} ms / {b['per_clip'].median:.3f} s |")  # fmt: skip
            share, overhead = b["fraction_of_gemm_peak"] * 100, b["host_overhead_fraction"] * 100
            rows.append(f"| {name}: GFLOP/s, fraction of GEMM peak, host overhead | {b['achieved_gflops']:.1f}, "
                        f"{share:.0f} %, {overhead:.2f} % |")  # fmt: skip
            if "profile" in b:
                top = ", ".join(f"{op} {share * 100:.1f} %" for op, share in list(b["profile"].items())[:6])
                rows.append(f"| {name}: step time by op type (profiler) | {top} |")
        if "int8_vs_fp32_step" in report:
            rows.append(f"| INT8 vs fp32 under ONNX Runtime, denoising step | {report['int8_vs_fp32_step']:.2f}x |")
    for r in report.get("thread_settings", []):
        spin = "on" if r["spin"] else "off"
        rows.append(f"| {r['bundle']} at {r['threads']} thread(s), spinning {spin}: step / clip | "
                    f"{r['denoise_step'].median * 1000:.2f} ms / {r['per_clip'].median:.3f} s |")  # fmt: skip
    if "cpp" in report:
        c = report["cpp"]
        rows.append(f"| C++ vs Python runtime (fp32): clip / step | {c['cpp_vs_python_clip']:.2f}x / "
                    f"{c['cpp_vs_python_step']:.2f}x |")  # fmt: skip
    s = report["scaling"]
    for M, full, cached in zip(s["history"], s["full"], s["cached"], strict=True):
        rows.append(f"| scaling, history {M} ({s['steps']} steps): full / cached | {full:.3f} s / {cached:.3f} s |")
    if "rolling_drift" in report:
        d = report["rolling_drift"]
        for k, rel, psnr in zip(d["rolls"], d["latent_relative_error"], d["frame_psnr_db"], strict=True):
            rows.append(f"| rolling vs exact after {k} frames rolled | latent rel. error {rel:.3f}, "
                        f"frames {psnr:.1f} dB PSNR |")  # fmt: skip
    rows.append(f"| peak RSS | {report['memory']['peak_rss_mib']:.0f} MiB |")
    return "\n".join(rows)


def plot(report: dict[str, Any], path: str | Path) -> Path:
    plt = pyplot()
    s = report["scaling"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(s["history"], s["full"], "o-", label="full (recompute every step)")
    ax.plot(s["history"], s["cached"], "s-", label="cached (exact KV cache)")
    ax.set_xlabel("history frames")
    ax.set_ylabel(f"seconds per clip ({s['steps']} steps)")
    ax.set_title(f"{report['settings']['model_name']}: time per predicted clip")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_json(report: dict[str, Any], path: str | Path) -> Path:

    with atomic_file(path, "w") as f:
        json.dump(to_jsonable(report), f, indent=2)
    return Path(path)


def rolling_drift(source: str | None, rolls: tuple[int, ...] = (1, 2, 4, 8, 16), videos: int = 8,
                  seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """How far the rolling KV cache drifts from the exact one: for each number of frames rolled in
    since the window was filled, the relative error of the predicted latents and the PSNR of the
    predicted frames, rolling against exact, with the same noise. Synthetic held-out scenes."""

    exact = load_predictor(source, mode="exact")
    rolling = load_predictor(source, mode="rolling")
    H, W = exact.layout.pixel_size
    M = exact.layout.history_frames
    rel, psnr = {k: [] for k in rolls}, {k: [] for k in rolls}
    for v in range(videos):
        frames = render_video(EVAL_SEED_START + 500 + v, SceneConfig(height=H, width=W, frames=M + max(rolls)))
        for k in rolls:
            for p in (exact, rolling):
                p.reset()
                p.observe(frames[: M + k])
            a = exact.predict(1, torch.Generator().manual_seed(seed), return_latents=True)
            b = rolling.predict(1, torch.Generator().manual_seed(seed), return_latents=True)
            rel[k].append(relative_error(b.latents, a.latents))
            psnr[k].append(float(metrics.psnr(b.frames, a.frames, peak_to_peak=255, frame_axis=None)))
    return {"rolls": list(rolls), "videos": videos,
            "latent_relative_error": [statistics.mean(rel[k]) for k in rolls],
            "frame_psnr_db": [statistics.mean(psnr[k]) for k in rolls]}  # fmt: skip
