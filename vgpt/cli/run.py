"""vgpt-run: predict the next clips of a video, a camera or a stream."""

from __future__ import annotations

import sys

import click

from vgpt.cli.options import BUNDLED, model_option
from vgpt.commands import (
    BUNDLE_LAYOUT,
    GUIDANCE,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    THREADS,
    bag_options,
    command,
    sigterm_as_interrupt,
)
from vgpt.default_model import (
    bundled_model_note,
    named_model,
)
from vgpt.errors import user_errors
from vgpt.progress import console_logging
from vgpt.runtime.config import PROVIDERS, RunConfig

_RUN = RunConfig(input="")


@command
@click.option(
    "--input",
    "input_",
    required=True,
    help="A video file, a camera index (0), a stream URL, a folder of images or a ROS 2 bag (.mcap, .db3, a bag "
    "folder with metadata.yaml).",
)
@bag_options
@click.option(
    "--engine",
    default=None,
    help="An export bundle folder (or an .onnx inside one), a checkpoint folder or a training run "
    "(its latest checkpoint). Default: the bundled model, exported on first use into a cache; "
    f"{bundled_model_note()}.",
)
@click.option(
    "--codec",
    default=None,
    help="The codec of a checkpoint that has none beside it (default: the bundled codec, with a note).",
)
@click.option(
    "--layout",
    type=BUNDLE_LAYOUT,
    default=None,
    help="Which of a bundle's layouts: its name (m4-g4-8x8) or M,G[,HxW] (default: its first); for a checkpoint "
    "or the bundled model, the layout to export at: M history frames, G per clip (default: its own).",
)
@click.option(
    "--output",
    default=_RUN.output,
    show_default=True,
    help="Side-by-side video (observed | predicted), H.264 through PyAV (mp4v through OpenCV otherwise); or NAME.mcap: "
    "the observed and predicted frames as ROS 2 image topics (/vgpt/observed, /vgpt/predicted, stamped with the "
    "time they show or predict) and per-clip stats (/vgpt/stats, JSON) for Foxglove.",
)
@click.option(
    "--copy-topics",
    is_flag=True,
    help="With a bag input and an .mcap --output: copy every topic of the input bag in too, as recorded.",
)
@click.option(
    "--frames-dir",
    default=None,
    help="Also write the predicted frames as PNGs into this folder (made if missing; a folder that holds "
    "other files is refused unless --force).",
)
@click.option("--force", is_flag=True, help="Replace a --frames-dir that holds files vgpt did not write.")
@click.option(
    "--sheet",
    default=None,
    help="Also write a contact sheet PNG: observed, true future (when known), predicted (--live: the last clip).",
)
@click.option("--latents", default=None, help="Also write the predicted latents to this .npz.")
@click.option(
    "--stats",
    default=None,
    help="Live mode: append one JSON line per predicted clip here (seconds since start, frames observed and "
    "dropped, the clip's compute time, the rate frames arrive at over the newest 40 and whether the clip was "
    "predicted faster than it lasts at that rate), flushed as it goes: for monitoring and soak tests.",
)
@click.option("--clips", type=POSITIVE, default=_RUN.clips, show_default=True, help="Clips to predict (offline mode).")
@click.option(
    "--steps",
    type=POSITIVE,
    default=None,
    help="Denoising steps: a bundle's are baked in (must match); a checkpoint or the bundled model is exported "
    f"again with them (default {BUNDLED.steps} for the bundled model).",
)
@click.option(
    "--guidance",
    type=GUIDANCE,
    default=None,
    help=f"Guidance scale: as --steps (a bundle's must match; default {BUNDLED.guidance:g} for the bundled model).",
)
@click.option("--seed", type=SEED, default=_RUN.seed, show_default=True, help="Seed of the sampler noise.")
@click.option(
    "--backend", type=click.Choice(["onnxruntime", "torch", "tensorrt"]), default=_RUN.backend, show_default=True
)
@click.option("--threads", type=THREADS, default=None, help="CPU threads for the backend (1 .. 4 x the cores).")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default=None,
    help="ONNX Runtime execution provider (default cpu); a missing one is an error, never a fall back to the CPU.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Keep predicting as frames arrive: capture runs in its own thread into a bounded queue that "
    "drops the oldest frame when full; a clip is predicted every G observed frames. Outputs are written as "
    "they come (the video as a fragmented MP4) and kept on every way out, a full disk included.",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="Live mode: read a recording (bag, video file, image folder) at its recorded pace, as a camera would "
    "deliver it (frames drop when prediction lags). Without it a recording is read as fast as it is consumed, "
    "every frame observed.",
)
@click.option(
    "--view",
    is_flag=True,
    help="Live mode: serve the observed and predicted frames and the stats to Foxglove (a WebSocket server on "
    "127.0.0.1, Foxglove's protocol; open Foxglove and connect to ws://127.0.0.1:PORT).",
)
@click.option(
    "--view-port",
    type=click.IntRange(0, 65535),
    default=_RUN.view_port,
    show_default=True,
    help="The --view server's port (0: any free port; the log says which).",
)
@click.option(
    "--show",
    is_flag=True,
    help="Live mode: a local window with the newest observed frame beside the frame predicted for that time.",
)
@click.option("--max-frames", type=POSITIVE, default=None, help="Live mode: stop after this many frames.")
@click.option("--queue-size", type=NON_NEGATIVE, default=_RUN.queue_size, help="Live mode: frames buffered (0: 2 x G).")
@click.option(
    "--kv-cache",
    type=click.Choice(["exact", "rolling"]),
    default=_RUN.kv_cache,
    show_default=True,
    help="exact: each prediction re-runs the newest M frames through prefill. rolling (for long live "
    "streams): the cache slides by one frame per observed frame without re-running the kept "
    "frames; APPROXIMATE for Video-GPT, since kept frames still carry what they saw of dropped ones (measured "
    "drift: docs/benchmarks.md); EXACT for GPDiT's lightweight mask, whose frames see only themselves "
    "(docs/gpdit.md).",
)
@click.option(
    "--trust-cache",
    is_flag=True,
    help="Skip re-hashing model files verified before and not written since (device, inode, size, mtime, "
    "ctime unchanged): faster starts of large models; bytes that rot without a write go unnoticed.",
)
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    metavar="PUB.pem",
    help="Load only an export bundle signed by this Ed25519 public key (vgpt-export --sign); repeat for several.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress display (on a terminal).")
@model_option("to run (with no --engine, or an --engine folder laid out like the bundled one)")
def run_main(input_, topic, fps, engine, codec, layout, output, copy_topics, frames_dir, force, sheet, latents, stats,
             clips, steps, guidance, seed, backend, threads, provider, live, realtime, view, view_port, show,
             max_frames, queue_size, kv_cache, trust_cache, trusted_keys, progress, model_name) -> None:  # fmt: skip
    """Predict the future of a video with Video-GPT and write observed | predicted side by side.

    By default the KV cache is exact: each predicted clip runs the newest M frames through prefill once,
    then every denoising step runs only the noisy clip against that cache.
    """
    console_logging()
    with user_errors():
        from vgpt.runtime.run import run

        engine = named_model(engine, model_name)
        config = RunConfig(input=input_, output=output, model=engine, codec=codec, layout=layout,
                           frames_dir=frames_dir, force=force, sheet=sheet, latents=latents, stats=stats,
                           clips=clips, steps=steps, guidance=guidance, seed=seed, backend=backend, threads=threads,
                           provider=provider, live=live, max_frames=max_frames, queue_size=queue_size,
                           kv_cache=kv_cache, trust_cache=trust_cache, trusted_keys=trusted_keys, progress=progress,
                           topic=topic, fps=fps, realtime=realtime, view=view, view_port=view_port, show=show,
                           copy_topics=copy_topics)  # fmt: skip
        with sigterm_as_interrupt():
            summary = run(config)
    click.echo(summary.line())
    if summary.interrupted:
        click.echo("Interrupted: wrote what was predicted before it stopped", err=True)
        sys.exit(130)
    if summary.error:
        click.echo(f"Error: {summary.error} (wrote what was predicted before it stopped)", err=True)
        sys.exit(1)
