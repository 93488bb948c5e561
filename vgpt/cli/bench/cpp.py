"""The C++ runtime against the Python runtime, on one bundle, in one run.

    report = compare_cpp("build/vgpt_bench", bundle_dir, clips=5, threads=1)

Both runtimes load the same bundle with the same intra-op thread count, observe M frames, predict one
clip `warmup` times and then `clips` times; each clip is timed on the wall clock, and so is every call
into ONNX Runtime, so that the host overhead (the share of a clip spent outside ONNX Runtime) is
measured the same way on both sides. The C++ side is `vgpt_bench` (cpp/tools/bench.cpp), run as a
subprocess after the Python side.

    python3 -m vgpt.cli.bench.cpp --binary build/vgpt_bench [--bundle DIR | --released]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgpt.cli.bench.timing import BenchConfig, bench_network
from vgpt.codecs import LightCodec
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.layout import Layout
from vgpt.runtime.loading import cached_export
from vgpt.runtime.predictor import load_predictor
from vgpt.sampler import SamplerConfig

# What both sides report, per runtime (the C++ side prints them as JSON).
RUNTIME_KEYS = ("clip_seconds", "step_seconds", "prefill_seconds", "decode_seconds", "host_overhead", "layout")


class _TimedSession:
    """An ONNX Runtime session whose `run_with_iobinding` calls add their wall time to `inside`."""

    def __init__(self, session, clock: dict[str, float]) -> None:
        self._session, self._clock = session, clock

    def run_with_iobinding(self, binding, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._session.run_with_iobinding(binding, *args, **kwargs)
        finally:
            self._clock["inside"] += time.perf_counter() - start

    def __getattr__(self, name: str):
        return getattr(self._session, name)


def summary(clip: list[float], step: list[float], prefill: list[float], decode: list[float],
            overhead: list[float]) -> dict[str, Any]:  # fmt: skip
    """The per-runtime figures from per-clip measurements (the same reduction as vgpt_bench's)."""
    return {
        "clip_seconds": {"median": statistics.median(clip), "min": min(clip), "runs": clip},
        "step_seconds": statistics.median(step),
        "prefill_seconds": statistics.median(prefill),
        "decode_seconds": statistics.median(decode),
        "host_overhead": statistics.median(overhead),
    }


def layout_dict(layout: Layout, latent_channels: int, steps: int) -> dict[str, int]:
    """The layout as vgpt_bench reports it."""
    H, W = layout.pixel_size
    return {"history": layout.history_frames, "clip": layout.clip_frames, "height": H, "width": W,
            "latent_channels": latent_channels, "latent_height": layout.latent_height,
            "latent_width": layout.latent_width, "steps": steps}  # fmt: skip


def time_python(bundle_dir: str | Path, clips: int, threads: int | None, warmup: int = 1, seed: int = 0) -> dict:
    """The Python runtime (`load_predictor` over ONNX Runtime) timed as vgpt_bench times the C++ one."""
    start = time.perf_counter()
    predictor = load_predictor(bundle_dir, threads=threads)
    load_seconds = time.perf_counter() - start
    backend = predictor.backend
    if not hasattr(backend, "_sessions"):
        raise TypeError(f"the {backend.name} backend has no ONNX Runtime sessions to time")
    clock = {"inside": 0.0}
    backend._sessions = {graph: _TimedSession(s, clock) for graph, s in backend._sessions.items()}
    layout: Layout = predictor.layout
    H, W = layout.pixel_size
    rng = np.random.default_rng(seed)
    predictor.observe(rng.integers(0, 256, (layout.history_frames, H, W, 3), dtype=np.uint8))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(warmup):
        predictor.predict(1, generator)
    clip, step, prefill, decode, overhead = [], [], [], [], []
    for _ in range(clips):
        clock["inside"] = 0.0
        start = time.perf_counter()
        prediction = predictor.predict(1, generator)
        wall = time.perf_counter() - start
        clip.append(wall)
        step.append(prediction.seconds_per_step)
        prefill.append(prediction.timings["prefill"])
        decode.append(prediction.timings["decode"])
        overhead.append((wall - clock["inside"]) / wall)
    C = int(backend.latent.shape[1])  # [1, C, h, w]
    return {
        "runtime": "python",
        "bundle": str(bundle_dir),
        "layout": layout_dict(layout, C, backend.steps),
        "threads": threads or 0,
        "warmup": warmup,
        "clips": clips,
        "load_seconds": load_seconds,
        **summary(clip, step, prefill, decode, overhead),
    }


def parse_cpp(stdout: str) -> dict:
    """vgpt_bench's JSON, checked for the keys the comparison reads."""
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError as err:
        raise ValueError(f"vgpt_bench printed no JSON object ({err}): {stdout[:200]!r}") from err
    missing = [k for k in RUNTIME_KEYS if k not in report]
    if missing:
        raise ValueError(f"vgpt_bench's report lacks {missing}: rebuild it (cmake --build build --target vgpt_bench)")
    return report


def time_cpp(binary: str | Path, bundle_dir: str | Path, clips: int, threads: int | None, warmup: int = 1,
             allow_spinning: bool = True, seed: int = 0) -> dict:  # fmt: skip
    command = [str(binary), str(bundle_dir), "--clips", str(clips), "--warmup", str(warmup),
               "--threads", str(threads or 0), "--seed", str(seed)]  # fmt: skip
    if allow_spinning:
        command.append("--allow-spinning")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return parse_cpp(done.stdout)


def ratios(python: dict, cpp: dict) -> dict[str, float]:
    """Speed-ups of C++ over Python (python time / cpp time: above 1 means C++ is faster) and both host
    overheads side by side."""
    return {
        "cpp_vs_python_clip": python["clip_seconds"]["median"] / cpp["clip_seconds"]["median"],
        "cpp_vs_python_clip_min": python["clip_seconds"]["min"] / cpp["clip_seconds"]["min"],
        "cpp_vs_python_step": python["step_seconds"] / cpp["step_seconds"],
        "python_host_overhead": python["host_overhead"],
        "cpp_host_overhead": cpp["host_overhead"],
    }


def compare_cpp(binary: str | Path, bundle_dir: str | Path, clips: int = 5, threads: int | None = None,
                warmup: int = 1, allow_spinning: bool = True) -> dict[str, Any]:  # fmt: skip
    """Time the Python runtime and the C++ runtime (`binary`: the built vgpt_bench) on `bundle_dir`.

    `threads`: intra-op threads of both (None: ONNX Runtime's choice). `allow_spinning` (C++ only):
    True by default, because the Python runtime's sessions keep onnxruntime's default (spinning
    threads); the C++ library's own default is off. With threads=1 it makes no difference.

    Returns a dict with:
      - "python", "cpp": each runtime's figures: "clip_seconds" {"median", "min", "runs"} (wall time of
        one predicted clip: prefill, S steps, decode, uint8 frames), "step_seconds" (median denoising
        loop time / S), "prefill_seconds", "decode_seconds", "host_overhead" (median share of a clip's
        wall time spent outside ONNX Runtime's run calls, 0..1), "load_seconds", "layout" {"history",
        "clip", "height", "width", "latent_channels", "latent_height", "latent_width", "steps"},
        "threads", "warmup", "clips" (the C++ side adds "allow_spinning");
      - "cpp_vs_python_clip", "cpp_vs_python_step": python median / cpp median (above 1: C++ faster);
      - "cpp_vs_python_clip_min": the same of the fastest clips (on a shared machine, the least disturbed);
      - "python_host_overhead", "cpp_host_overhead": the two host overheads again, side by side.
    """
    python = time_python(bundle_dir, clips, threads, warmup)
    cpp = time_cpp(binary, bundle_dir, clips, threads, warmup, allow_spinning)
    return {"python": python, "cpp": cpp, **ratios(python, cpp)}


def released_bundle(out: str | Path, model: str | None = None) -> Path:
    """An fp32 bundle at vgpt-bench's default proportions (BenchConfig: history 56, clip 24, 8x8
    latents, 50 steps) of the model vgpt-bench loads (`model`: None, the bundled weights, or
    "preset:NAME"). The codec is a random LightCodec of the right shape, as in vgpt-bench: its cost,
    not its output, matters here."""
    config = BenchConfig(model=model)
    net = bench_network(config.model)
    layout = Layout.for_model(net.config, config.history, config.clip, *config.latent)
    sampler = SamplerConfig(steps=config.steps, guidance=config.guidance)
    export_bundle(net, LightCodec().eval(), out, ExportConfig(layouts=(layout,), sampler=sampler, verify=False))
    return Path(out)


def table(report: dict[str, Any]) -> str:
    py, cpp = report["python"], report["cpp"]
    layout = py["layout"]
    rows = [
        f"layout: history {layout['history']}, clip {layout['clip']}, {layout['latent_height']}x"
        f"{layout['latent_width']} latents, {layout['steps']} steps; threads {py['threads'] or 'default'}",
        "| | Python | C++ | C++ speed-up |",
        "|---|---|---|---|",
        f"| per clip (median) | {py['clip_seconds']['median']:.3f} s | {cpp['clip_seconds']['median']:.3f} s | "
        f"{report['cpp_vs_python_clip']:.2f}x |",
        f"| per clip (fastest) | {py['clip_seconds']['min']:.3f} s | {cpp['clip_seconds']['min']:.3f} s | "
        f"{report['cpp_vs_python_clip_min']:.2f}x |",
        f"| per step (median) | {py['step_seconds'] * 1e3:.2f} ms | {cpp['step_seconds'] * 1e3:.2f} ms | "
        f"{report['cpp_vs_python_step']:.2f}x |",
        f"| host overhead | {py['host_overhead'] * 100:.2f} % | {cpp['host_overhead'] * 100:.2f} % | |",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="C++ vs Python runtime: per-clip time and host overhead")
    parser.add_argument("--binary", required=True, type=Path, help="the built vgpt_bench (build/vgpt_bench)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bundle", type=Path, help="an export bundle (default: the bundled model's cached export)")
    where.add_argument(
        "--released",
        action="store_true",
        help="the bundled model exported at vgpt-bench's proportions (into a temporary folder)",
    )
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the whole report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vgpt-cpp-bench-") as tmp:
        if args.released:
            bundle = released_bundle(Path(tmp) / "bundle")
        else:
            bundle = args.bundle or cached_export(None, None, None)
        report = compare_cpp(args.binary, bundle, args.clips, args.threads, args.warmup)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(table(report))


if __name__ == "__main__":
    main()
