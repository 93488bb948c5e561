"""What every vgpt-bench section shares: its settings (BenchConfig), one timing (median and spread of
repeated runs, with a warning when the runs disagree), resident memory, and the network it times."""

from __future__ import annotations

import logging
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vgpt.checkpoint import load_checkpoint
from vgpt.config import SamplerConfig, get_preset
from vgpt.default_model import default_model
from vgpt.model import VideoGPT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # None: the bundled model; "preset:NAME": random weights; else a checkpoint folder
    history: int = 56  # the released inference layout's proportions
    clip: int = 24
    latent: tuple[int, int] = (8, 8)
    steps: int = SamplerConfig.steps
    guidance: float = SamplerConfig.guidance
    extra_layouts: tuple[tuple[int, int], ...] = ()  # (history, clip) pairs the user names
    scaling_histories: tuple[int, ...] = (8, 16, 32, 64, 128)
    scaling_steps: int = 10
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    onnx: bool = True
    precisions: tuple[str, ...] = ("fp32", "int8")  # the model exported at each, timed under ONNX Runtime
    bundles: tuple[str, ...] = ()  # existing bundles to time instead (all at one layout)
    calibration_clips: int = 2  # INT8/FP8 exports of the bench: speed does not depend on the calibration set
    gemm_size: int = 1024  # the square GEMM that measures this CPU's throughput
    cpp: str | None = None  # a built vgpt_bench binary: also time the C++ runtime on the fp32 bundle
    thread_settings: bool = False  # also time each bundle at 1 .. cores intra-op threads, spinning on and off
    drift: bool = False  # also measure the rolling cache's drift from the exact one (bundled/checkpoint)
    profile: bool = False  # also profile each bundle's denoising step: the share of its time per op type
    # Only the live-stream costs per observed frame and per prediction by KV cache (vgpt.cli.bench.live):
    # `model` as Video-GPT against `gpdit_model`, at the bundled layout and at each layout of this config.
    live: bool = False
    gpdit_model: str = "preset:gpdit-small"
    # Teacher against few-step students per clip (vgpt.cli.bench.students): students of these K (random
    # weights of the teacher's shape), or the trained `student` checkpoint; `students_only`: nothing else.
    student_steps: tuple[int, ...] = ()
    student: str | None = None
    students_only: bool = False
    seed: int = 0


@dataclass
class Timing:
    median: float
    spread: float  # max - min over the repeats
    runs: list[float] = field(default_factory=list)


# Repeated runs of one timing further apart than this (slowest over fastest) measure the machine's other
# load more than the code: on a loaded 2-core machine, runs of one PyTorch clip ranged 8.4-20.5 s.
UNSTEADY_RATIO = 2.0


def unsteady(runs: list[float], limit: float = UNSTEADY_RATIO) -> str | None:
    """What is wrong with `runs` when its slowest run is over `limit` times its fastest, else None."""
    if len(runs) < 2 or min(runs) <= 0 or max(runs) / min(runs) <= limit:
        return None
    return (f"runs disagree: {min(runs) * 1e3:.1f} .. {max(runs) * 1e3:.1f} ms ({max(runs) / min(runs):.1f}x); "
            "the machine is busy with other work, so this figure and its ratios are unreliable: rerun on a "
            "quiet machine or with --threads 1")  # fmt: skip


def measure(fn: Callable[[], Any], repeats: int, warmup: int, name: str = "a timing") -> Timing:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    problem = unsteady(runs)
    if problem is not None:
        log.warning("vgpt-bench: %s: %s", name, problem)
    return Timing(statistics.median(runs), max(runs) - min(runs), runs)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_network(spec: str | None) -> VideoGPT:
    """The network the bench times: the default model's (None), random weights of a preset
    ("preset:NAME", seed 0) or a checkpoint folder's."""
    if spec is None:
        return load_checkpoint(default_model().model_dir).model
    if spec.startswith("preset:"):
        torch.manual_seed(0)
        return VideoGPT(get_preset(spec.split(":", 1)[1])).eval()
    return load_checkpoint(spec).model
