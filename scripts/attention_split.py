"""The denoising step's attention in three forms, in one run: one masked call, the open-row split
(vgpt.masks.QueryMask, the default) and the open-row split over a cache attended in two parts instead of
concatenated (ExportConfig.kv_attention="two_part"). The bundled model at the released proportions
(history 56, clip 24, 8x8 latents, guidance 1.5) is exported each way at fp32 and timed interleaved under
ONNX Runtime, with PyTorch eager beside it.

    python scripts/attention_split.py --threads 2 --rounds 8

Prints each variant's median and minimum step time and the ratios; docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import vgpt.masks
from vgpt.cli.bench.suite import _bench_inputs
from vgpt.cli.bench.timing import bench_network
from vgpt.codecs import LightCodec
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.graphs import DenoiseGraph, PrefillGraph
from vgpt.export.manifest import load_bundle
from vgpt.layout import Layout
from vgpt.predictors import inference_calls
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.sampler import SamplerConfig

# name -> (the share of open rows at which a call is split, how the step attends the cache)
VARIANTS = {
    "one masked call": (2.0, "concat"),
    "open rows split": (vgpt.masks.OPEN_ROWS_TO_SPLIT, "concat"),
    "two-part cache": (vgpt.masks.OPEN_ROWS_TO_SPLIT, "two_part"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds of 3 steps per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = bench_network(None)
    layout = Layout.for_model(model.config, 56, 24, 8, 8)
    sampler = SamplerConfig(steps=50, guidance=1.5)
    history, z = _bench_inputs(model.config.latent_channels, layout, 0)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="vgpt-split-") as tmp, torch.no_grad():
        for i, (name, (threshold, kv_attention)) in enumerate(VARIANTS.items()):
            vgpt.masks.OPEN_ROWS_TO_SPLIT = threshold  # read when the graphs' calls are made:
            inference_calls.cache_clear()  # not the other variant's, remembered
            export_bundle(model, LightCodec().eval(), Path(tmp) / str(i),
                          ExportConfig(layouts=(layout,), sampler=sampler, verify=False,
                                       kv_attention=kv_attention))  # fmt: skip
            # Idle ONNX Runtime threads sleep, so that they do not spin against the PyTorch runs between.
            backend = OrtBackend(load_bundle(Path(tmp) / str(i)), threads=args.threads, spin=False)
            backend.prefill(history.numpy())
            step = DenoiseGraph(model, layout, sampler, two_part=kv_attention == "two_part")
            kv = PrefillGraph(model, layout, sampler)(history)
            runs[name] = {"onnxruntime": backend.step_once, "torch": lambda s=step, kv=kv: s(z, kv, torch.tensor([3]))}
        times = {(name, rt): [] for name in runs for rt in runs[name]}
        for _ in range(args.rounds):
            for name, fns in runs.items():
                for rt, fn in fns.items():
                    fn()  # warm after the other variant ran
                    for _ in range(3):
                        start = time.perf_counter()
                        fn()
                        times[name, rt].append(time.perf_counter() - start)
    medians = {key: statistics.median(v) for key, v in times.items()}
    for (name, rt), v in times.items():
        print(f"{rt:12s} {name:16s} step median {medians[name, rt] * 1e3:7.2f} ms, min {min(v) * 1e3:7.2f} ms")
    one_call, split, two_part = VARIANTS
    for rt in ("onnxruntime", "torch"):
        print(f"{rt}: split vs one call {medians[one_call, rt] / medians[split, rt]:.2f}x, "
              f"two-part cache vs concatenated {medians[split, rt] / medians[two_part, rt]:.2f}x")  # fmt: skip
    for name in VARIANTS:
        print(f"{name}: ONNX Runtime vs PyTorch {medians[name, 'torch'] / medians[name, 'onnxruntime']:.2f}x")


if __name__ == "__main__":
    main()
