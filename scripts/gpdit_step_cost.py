"""The cost of one training step of `gpdit-small` against Video-GPT's `small` (the bundled size), on one
thread: the bundled recipe's batch (8 samples of 8 frames, 8x8 latents), forward, backward and AdamW, the
same partitions and noise for both models, the two timed interleaved.

    python scripts/gpdit_step_cost.py --steps 8 --rounds 3

Prints each model's step time (the best round's median) and the ratio; docs/gpdit.md quotes it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vgpt.config import get_preset
from vgpt.model import VideoGPT
from vgpt.training.objective import next_clip_loss

PRESETS = ("small", "gpdit-small")


def step_times(preset: str, partition, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = VideoGPT(get_preset(preset)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    latents = torch.randn(8, 8, 4, 8, 8)  # [B, n, C, h, w]
    times = []
    for i in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        optimizer.zero_grad()
        loss, _ = next_clip_loss(model, latents, torch.Generator().manual_seed(i), partition)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for partition in ("random", (4, 4)):
        best = {p: float("inf") for p in PRESETS}
        for _ in range(args.rounds):
            for preset in PRESETS:
                best[preset] = min(best[preset], statistics.median(step_times(preset, partition, args.steps)))
        row = ", ".join(f"{p} {best[p] * 1e3:.0f} ms ({get_preset(p).num_parameters() / 1e6:.2f}M)" for p in PRESETS)
        print(f"partition {partition}: {row}; gpdit-small / small {best['gpdit-small'] / best['small']:.3f}")


if __name__ == "__main__":
    main()
