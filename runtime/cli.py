"""vgpt-run: predict the next clips of a video, a camera or a stream."""

from __future__ import annotations

import logging
import sys

import click

from vgpt.runtime.run import RunConfig

_RUN = RunConfig(input="")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--input", "input_", required=True, help="A video file, a camera index (0), a stream URL or a folder of images."
)
@click.option(
    "--engine",
    default=None,
    help="An export bundle folder (or an .onnx inside one), or a checkpoint folder with its codec/. "
    "Default: the bundled model, exported on first use into a cache.",
)
@click.option(
    "--output",
    default=_RUN.output,
    show_default=True,
    help="Side-by-side video (observed | predicted), H.264 through PyAV (mp4v through OpenCV otherwise).",
)
@click.option("--frames-dir", default=None, help="Also write the predicted frames as PNGs here.")
@click.option("--latents", default=None, help="Also write the predicted latents to this .npz.")
@click.option("--clips", default=_RUN.clips, show_default=True, help="Clips to predict (offline mode).")
@click.option("--steps", type=int, default=None, help="Denoising steps (must match the bundle's schedule).")
@click.option("--guidance", type=float, default=None, help="Guidance scale (must match the bundle's).")
@click.option("--seed", default=_RUN.seed, show_default=True, help="Seed of the sampler noise.")
@click.option(
    "--backend", type=click.Choice(["onnxruntime", "torch", "tensorrt"]), default=_RUN.backend, show_default=True
)
@click.option("--threads", type=int, default=None, help="CPU threads for the backend.")
@click.option(
    "--live",
    is_flag=True,
    help="Keep predicting as frames arrive: capture runs in its own thread into a bounded queue that "
    "drops the oldest frame when full; a clip is predicted every G observed frames.",
)
@click.option("--max-frames", type=int, default=None, help="Live mode: stop after this many frames.")
@click.option(
    "--kv-cache",
    type=click.Choice(["exact", "rolling"]),
    default=_RUN.kv_cache,
    show_default=True,
    help="exact: each prediction re-runs the newest M frames through prefill. rolling (for long live "
    "streams): the cache slides by one frame per observed frame without re-running the kept "
    "frames; APPROXIMATE, since kept frames still carry what they saw of dropped ones (see the "
    "README for the measured drift).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def run_main(input_, engine, output, frames_dir, latents, clips, steps, guidance, seed, backend, threads, live,
             max_frames, kv_cache, progress) -> None:  # fmt: skip
    """Predict the future of a video with Video-GPT and write observed | predicted side by side.

    By default the KV cache is exact: each predicted clip runs the newest M frames through prefill once,
    then every denoising step runs only the noisy clip against that cache.
    """
    from vgpt.checkpoint import CheckpointError
    from vgpt.config import ConfigError
    from vgpt.engines.plan import EngineError
    from vgpt.export.manifest import BundleError
    from vgpt.runtime.predictor import NotEnoughHistoryError
    from vgpt.runtime.run import run
    from vgpt.video import VideoError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = RunConfig(input=input_, output=output, engine=engine, frames_dir=frames_dir, latents=latents,
                       clips=clips, steps=steps, guidance=guidance, seed=seed, backend=backend, threads=threads,
                       live=live, max_frames=max_frames, kv_cache=kv_cache, progress=progress)  # fmt: skip
    try:
        summary = run(config)
    except (VideoError, BundleError, EngineError, CheckpointError, ConfigError, NotEnoughHistoryError,
            FileNotFoundError) as err:  # fmt: skip
        raise click.ClickException(str(err)) from err
    click.echo(summary.line())
    if summary.error:
        click.echo(f"Error: {summary.error} (wrote what was predicted before it stopped)", err=True)
        sys.exit(1)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model", default=None, help="Checkpoint folder, or preset:NAME for random weights (default: the bundled model)."
)
@click.option("--history", default=56, show_default=True, help="History frames (released inference: 56).")
@click.option("--clip", default=24, show_default=True, help="Clip frames (released inference: 24).")
@click.option("--latent-size", default="8x8", show_default=True, help="Latent height x width.")
@click.option("--steps", default=50, show_default=True)
@click.option("--guidance", default=1.5, show_default=True)
@click.option("--layout", "extra", multiple=True, help="Also time M,G (history, clip) per predicted clip.")
@click.option("--scaling", default="8,16,32,64,128", show_default=True, help="History lengths of the scaling series.")
@click.option("--scaling-steps", default=10, show_default=True, help="Denoising steps in the scaling series.")
@click.option("--repeats", default=3, show_default=True)
@click.option("--warmup", default=1, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX Runtime measurements.")
@click.option("--drift", is_flag=True, help="Also measure the rolling KV cache's drift from the exact cache.")
@click.option("--json", "json_out", default=None, help="Write every figure, the machine and versions here.")
@click.option("--markdown", default=None, help="Write the table as markdown here.")
@click.option("--plot", default=None, help="Write a PNG of the scaling curves here (matplotlib).")
def bench_main(model, history, clip, latent_size, steps, guidance, extra, scaling, scaling_steps, repeats, warmup,
               threads, no_onnx, drift, json_out, markdown, plot) -> None:  # fmt: skip
    """Time the released-style full predictor against the cached one, PyTorch against ONNX Runtime,
    the host overhead of the denoising loop and the scaling with history length."""
    from vgpt.runtime.bench import BenchConfig, run_bench, table, write_json
    from vgpt.runtime.bench import plot as plot_report

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        h, w = (int(v) for v in latent_size.lower().split("x"))
        layouts = tuple(tuple(int(v) for v in item.split(",")) for item in extra)
        histories = tuple(int(v) for v in scaling.split(","))
    except ValueError as err:
        raise click.BadParameter(f"cannot parse sizes: {err}") from None
    config = BenchConfig(model=model, history=history, clip=clip, latent=(h, w), steps=steps, guidance=guidance,
                         extra_layouts=layouts, scaling_histories=histories, scaling_steps=scaling_steps,
                         repeats=repeats, warmup=warmup, threads=threads, onnx=not no_onnx,
                         drift=drift)  # fmt: skip
    report = run_bench(config)
    text = table(report)
    click.echo(text)
    if json_out:
        write_json(report, json_out)
    if markdown:
        from pathlib import Path

        Path(markdown).write_text(text + "\n")
    if plot:
        plot_report(report, plot)
