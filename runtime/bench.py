"""vgpt-bench: speed and memory side by side, in one run, on whatever machine it runs.

Everything is measured here, in this process: per predicted clip the released-style `full` predictor
against our cached one (same backend: PyTorch eager); per graph PyTorch eager against ONNX Runtime;
the host overhead of the ONNX Runtime denoising loop; time per clip as the history grows; peak RSS.
Each timing is the median of `repeats` runs after `warmup` runs, reported with its spread.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgpt.config import Layout, get_preset
from vgpt.model import VideoGPT
from vgpt.predictors import CachedPredictor, FullPredictor
from vgpt.sampler import SamplerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # None: the bundled model; "preset:NAME": random weights; else a checkpoint folder
    history: int = 56  # the released inference layout's proportions
    clip: int = 24
    latent: tuple[int, int] = (8, 8)
    steps: int = 50
    guidance: float = 1.5
    extra_layouts: tuple[tuple[int, int], ...] = ()  # (history, clip) pairs the user names
    scaling_histories: tuple[int, ...] = (8, 16, 32, 64, 128)
    scaling_steps: int = 10
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    onnx: bool = True
    drift: bool = False  # also measure the rolling cache's drift from the exact one (bundled/checkpoint)
    seed: int = 0


@dataclass
class Timing:
    median: float
    spread: float  # max - min over the repeats
    runs: list[float] = field(default_factory=list)


def measure(fn: Callable[[], Any], repeats: int, warmup: int) -> Timing:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return Timing(statistics.median(runs), max(runs) - min(runs), runs)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_model(spec: str | None) -> VideoGPT:
    from vgpt.checkpoint import load_checkpoint

    if spec is None:
        from vgpt.bundled import bundled_default

        return load_checkpoint(bundled_default().model_dir).model
    if spec.startswith("preset:"):
        torch.manual_seed(0)
        return VideoGPT(get_preset(spec.split(":", 1)[1])).eval()
    return load_checkpoint(spec).model


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


def _graph_times(model, layout: Layout, sampler: SamplerConfig, config: BenchConfig) -> dict[str, Any]:
    """Prefill and one denoising step: PyTorch eager against ONNX Runtime (bound buffers), and the host
    overhead of ONNX Runtime's whole denoising loop."""
    from vgpt.codecs import LightCodec
    from vgpt.export.bundle import ExportConfig, export_bundle
    from vgpt.export.graphs import DenoiseGraph, PrefillGraph
    from vgpt.export.manifest import load_bundle
    from vgpt.runtime.backends.ort_backend import OrtBackend

    C = model.config.latent_channels
    M, G, h, w = layout.history_frames, layout.clip_frames, layout.latent_height, layout.latent_width
    gen = torch.Generator().manual_seed(config.seed)
    history = torch.randn(1, M, C, h, w, generator=gen)
    z = torch.randn(1, G, C, h, w, generator=gen)
    prefill, denoise = PrefillGraph(model, layout, sampler), DenoiseGraph(model, layout, sampler)
    with torch.no_grad():
        kv = prefill(history)
        step = torch.tensor([sampler.steps // 2])
        torch_prefill = measure(lambda: prefill(history), config.repeats, config.warmup)
        torch_step = measure(lambda: denoise(z, kv, step), config.repeats * 3, config.warmup)
    result: dict[str, Any] = {"torch": {"prefill": torch_prefill, "denoise_step": torch_step}}
    if not config.onnx:
        return result
    with tempfile.TemporaryDirectory(prefix="vgpt-bench-") as tmp:
        # The codec graphs are not timed here; any codec of the right shape serves the export.
        export_bundle(model, LightCodec().eval(), Path(tmp) / "b",
                      ExportConfig(layouts=(layout,), sampler=sampler, verify=False))  # fmt: skip
        backend = OrtBackend(load_bundle(Path(tmp) / "b"), threads=config.threads)
        backend.prefill(history.numpy())
        ort_prefill = measure(lambda: backend.prefill(history.numpy()), config.repeats, config.warmup)
        ort_step = measure(backend.step_once, config.repeats * 3, config.warmup)
        loop = measure(lambda: backend.denoise(z.numpy()), config.repeats, config.warmup)
        fractions = []
        for _ in range(config.repeats):
            _, inside, total = backend.denoise_timed(z.numpy())
            fractions.append((total - inside) / total)
        overhead = statistics.median(fractions)
    result["onnxruntime"] = {"prefill": ort_prefill, "denoise_step": ort_step, "denoise_loop": loop}
    result["host_overhead_fraction"] = overhead
    return result


def run_bench(config: BenchConfig) -> dict[str, Any]:
    if config.threads:
        torch.set_num_threads(config.threads)
    model = load_model(config.model)
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
    for M, G in layouts:
        layout = Layout.for_model(mc, M, G, h, w)
        log.info("per clip: history %d, clip %d, %d steps", M, G, sampler.steps)
        times = _clip_times(model, layout, sampler, config.repeats, config.warmup, config.seed)
        report["per_clip"].append({"history": M, "clip": G, "tokens_per_frame": layout.block, **times,
                                   "speedup": times["full"].median / times["cached"].median})  # fmt: skip
    report["speedup_cached_vs_full"] = report["per_clip"][0]["speedup"]
    log.info("per graph: PyTorch eager and ONNX Runtime")
    layout = Layout.for_model(mc, config.history, config.clip, h, w)
    graphs = _graph_times(model, layout, sampler, config)
    report["per_graph"] = graphs
    if "onnxruntime" in graphs:
        report["ort_vs_torch_step"] = (
            graphs["torch"]["denoise_step"].median / graphs["onnxruntime"]["denoise_step"].median
        )
        report["host_overhead_fraction"] = graphs["host_overhead_fraction"]
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
    import vgpt

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
    rows = ["| measure | value |", "|---|---|"]
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("--plot needs matplotlib: pip install 'vgpt[bench]'") from err
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
    from vgpt.atomic import atomic_file

    with atomic_file(path, "w") as f:
        json.dump(to_jsonable(report), f, indent=2)
    return Path(path)


def rolling_drift(source: str | None, rolls: tuple[int, ...] = (1, 2, 4, 8, 16), videos: int = 8,
                  seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """How far the rolling KV cache drifts from the exact one: for each number of frames rolled in
    since the window was filled, the relative error of the predicted latents and the PSNR of the
    predicted frames, rolling against exact, with the same noise. Synthetic held-out scenes."""
    from vgpt.runtime.predictor import load_predictor
    from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video

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
            rel[k].append(float(np.linalg.norm(b.latents - a.latents) / np.linalg.norm(a.latents)))
            mse = float(np.mean((a.frames.astype(np.float64) - b.frames) ** 2)) / 255.0**2
            psnr[k].append(10 * np.log10(1.0 / max(mse, 1e-12)))
    return {"rolls": list(rolls), "videos": videos,
            "latent_relative_error": [statistics.mean(rel[k]) for k in rolls],
            "frame_psnr_db": [statistics.mean(psnr[k]) for k in rolls]}  # fmt: skip
