"""vgpt-predict: next-clip prediction in latent space with both reference predictors.

Runs the released-style `full` predictor and our KV-cached predictor on the same history and
seed, and reports how far apart they are and how long each took per clip.
"""

from __future__ import annotations

import logging
import time

import click

from vgpt.commands import GUIDANCE, LAYOUT, POSITIVE, SEED, command
from vgpt.config import PRESETS, SamplerConfig
from vgpt.errors import user_errors

log = logging.getLogger("vgpt")


@command
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="small",
    show_default=True,
    help="Model preset with seeded random weights (used when no --checkpoint is given).",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A vgpt or released Video-GPT checkpoint folder.",
)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/.pt weights (loaded with weights_only=True).")
@click.option(
    "--layout",
    type=LAYOUT,
    default="8,4,8x8",
    show_default=True,
    help="M history frames, G frames per clip, latent HxW (or HxWpx in pixels).",
)
@click.option("--clips", type=POSITIVE, default=2, show_default=True, help="Clips to predict autoregressively.")
@click.option("--steps", type=POSITIVE, default=20, show_default=True, help="Denoising steps per clip.")
@click.option(
    "--guidance", type=GUIDANCE, default=SamplerConfig.guidance, show_default=True, help="Guidance scale; 1 = off."
)
@click.option(
    "--shift", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Schedule shift."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of weights, history and noise.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the latents to this .npz.")
def predict_main(**options) -> None:
    """Predict the next clips of a latent history with the `full` and `cached` predictors."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with user_errors():
        _predict(**options)


def _predict(preset, checkpoint, allow_pickle, layout, clips, steps, guidance,
             shift, seed, out) -> None:  # fmt: skip
    import numpy as np
    import torch

    from vgpt.checkpoint import load_checkpoint
    from vgpt.config import get_preset
    from vgpt.model import VideoGPT
    from vgpt.predictors import CachedPredictor, FullPredictor
    from vgpt.sampler import SamplerConfig

    torch.manual_seed(seed)
    sampler = SamplerConfig(steps=steps, shift=shift, guidance=guidance)
    if checkpoint:
        loaded = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
        model, sampler = loaded.model, loaded.sampler(sampler)  # a distilled student samples its own table
    else:
        log.info("no --checkpoint: preset %r with seeded random weights (predictions are not meaningful)", preset)
        model = VideoGPT(get_preset(preset)).eval()
    config = model.config
    layout = layout.resolve(config)
    clip_frames, latent_size = layout.clip_frames, (layout.latent_height, layout.latent_width)
    gen = torch.Generator().manual_seed(seed)
    history = torch.randn((1, layout.history_frames, config.latent_channels, *latent_size), generator=gen)

    results = {}
    for name, cls in (("full", FullPredictor), ("cached", CachedPredictor)):
        predictor = cls(model, sampler, window=layout.history_frames)
        start = time.perf_counter()
        results[name] = predictor.predict(history, clips, clip_frames, torch.Generator().manual_seed(seed + 1))
        per_clip = (time.perf_counter() - start) / clips
        results[name + "_s"] = per_clip
        click.echo(f"{name:>6}: {per_clip * 1000:9.1f} ms per clip ({clips} clips x {clip_frames} frames, "
                   f"{sampler.steps} steps, guidance {sampler.guidance})")  # fmt: skip
    diff = (results["full"] - results["cached"]).abs().max().item()
    speedup = results["full_s"] / results["cached_s"]
    click.echo(f"cached vs full: max abs difference {diff:.3g}, speed-up {speedup:.2f}x "
               f"(model {config.name}, {config.num_parameters() / 1e6:.1f}M parameters, history "
               f"{layout.history_frames}, {layout.block} tokens per frame)")  # fmt: skip
    if out:
        np.savez(out, history=history.numpy(), prediction=results["cached"].numpy())
        click.echo(f"wrote {out}")
