"""vgpt-run: predict the next clips of a video, a camera or a stream."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vgpt.atomic import atomic_file
from vgpt.commands import (
    GUIDANCE,
    LAYOUT,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    THREADS,
    THREADS_HELP,
    bag_options,
    command,
    sigterm_as_interrupt,
    torch_threads,
)
from vgpt.default_model import (
    BUNDLED_MODELS,
    DEFAULT_DIR,
    SETTINGS,
    Defaults,
    bundled_model_note,
    named_model,
    resolve_checkpoint,
)
from vgpt.errors import user_errors
from vgpt.progress import console_logging
from vgpt.runtime.config import PROVIDERS, RunConfig
from vgpt.synthetic import EVAL_SEED_START

_RUN = RunConfig(input="")
_BUNDLED = Defaults.from_settings(json.loads((DEFAULT_DIR / SETTINGS).read_text()))  # for help texts


def _model_option(what: str):
    return click.option(
        "--model",
        "model_name",
        type=click.Choice(list(BUNDLED_MODELS)),
        default=None,
        help=f"Which bundled model {what}: the teacher ({_BUNDLED.steps} steps x 2 branches) or its distilled "
        "student (K steps x 1 branch), where shipped. Default: the student once its recorded figures at every "
        "horizon are at least the teacher's, else the teacher.",
    )


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
    "dropped, the clip's compute time), flushed as it goes: for monitoring and soak tests.",
)
@click.option("--clips", type=POSITIVE, default=_RUN.clips, show_default=True, help="Clips to predict (offline mode).")
@click.option(
    "--steps",
    type=POSITIVE,
    default=None,
    help="Denoising steps: a bundle's are baked in (must match); a checkpoint or the bundled model is exported "
    f"again with them (default {_BUNDLED.steps} for the bundled model).",
)
@click.option(
    "--guidance",
    type=GUIDANCE,
    default=None,
    help=f"Guidance scale: as --steps (a bundle's must match; default {_BUNDLED.guidance:g} for the bundled model).",
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
@_model_option("to run (with no --engine, or an --engine folder laid out like the bundled one)")
def run_main(input_, topic, fps, engine, codec, output, copy_topics, frames_dir, force, sheet, latents, stats, clips,
             steps, guidance, seed, backend, threads, provider, live, realtime, view, view_port, show, max_frames,
             queue_size, kv_cache, trust_cache, trusted_keys, progress, model_name) -> None:  # fmt: skip
    """Predict the future of a video with Video-GPT and write observed | predicted side by side.

    By default the KV cache is exact: each predicted clip runs the newest M frames through prefill once,
    then every denoising step runs only the noisy clip against that cache.
    """
    console_logging()
    with user_errors():
        from vgpt.runtime.run import run

        engine = named_model(engine, model_name)
        config = RunConfig(input=input_, output=output, engine=engine, codec=codec, frames_dir=frames_dir, force=force,
                           sheet=sheet, latents=latents, stats=stats, clips=clips, steps=steps, guidance=guidance,
                           seed=seed, backend=backend, threads=threads, provider=provider, live=live,
                           max_frames=max_frames, queue_size=queue_size, kv_cache=kv_cache, trust_cache=trust_cache,
                           trusted_keys=trusted_keys, progress=progress, topic=topic, fps=fps, realtime=realtime,
                           view=view, view_port=view_port, show=show, copy_topics=copy_topics)  # fmt: skip
        with sigterm_as_interrupt():
            summary = run(config)
    click.echo(summary.line())
    if summary.interrupted:
        click.echo("Interrupted: wrote what was predicted before it stopped", err=True)
        sys.exit(130)
    if summary.error:
        click.echo(f"Error: {summary.error} (wrote what was predicted before it stopped)", err=True)
        sys.exit(1)


@command
@click.option(
    "--model", default=None, help="Checkpoint folder, or preset:NAME for random weights (default: the bundled model)."
)
@click.option(
    "--layout",
    "layouts",
    type=LAYOUT,
    multiple=True,
    default=("56,24,8x8",),
    show_default=True,
    help="M,G,HxW (latents; released: 56,24,8x8); more --layout M,G also time those per clip at that size.",
)
@click.option("--steps", type=POSITIVE, default=50, show_default=True)
@click.option("--guidance", type=GUIDANCE, default=1.5, show_default=True)
@click.option("--scaling", default="8,16,32,64,128", show_default=True, help="History lengths of the scaling series.")
@click.option(
    "--scaling-steps", type=POSITIVE, default=10, show_default=True, help="Denoising steps in the scaling series."
)
@click.option("--repeats", type=POSITIVE, default=3, show_default=True)
@click.option("--warmup", type=NON_NEGATIVE, default=1, show_default=True)
@click.option("--threads", type=THREADS, default=None, help="CPU threads (1 .. 4 x the cores).")
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX Runtime measurements.")
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    type=click.Choice(["fp32", "fp16", "int8", "fp8"]),
    help="Export the model at these and time them side by side (default: fp32 and int8).",
)
@click.option("--bundle", "bundles", multiple=True, help="Time these bundles side by side instead (one layout).")
@click.option("--cpp", default=None, help="A built vgpt_bench: also time the C++ runtime on the fp32 bundle.")
@click.option(
    "--thread-settings", is_flag=True, help="Also time each bundle at 1 .. cores threads, spinning on and off."
)
@click.option("--drift", is_flag=True, help="Also measure the rolling KV cache's drift from the exact cache.")
@click.option("--profile", is_flag=True, help="Also profile each bundle's denoising step: time share per op type.")
@click.option(
    "--live",
    is_flag=True,
    help="Only a live stream's costs per observed frame and per prediction: Video-GPT exact (re-prefill) and "
    "rolling (approximate) against GPDiT's exact rolling window, at the bundled layout and at each --layout.",
)
@click.option("--gpdit-model", default="preset:gpdit-small", show_default=True, help="--live: the GPDiT model.")
@click.option(
    "--students",
    "student_steps",
    default=None,
    metavar="K,...",
    help="Also time the teacher against few-step students with these K (from 1,2,4) per clip (prefill + steps + "
    "decode), ONNX Runtime and PyTorch, at the bundled layout and at the first --layout: random weights of the "
    "teacher's shape (speed does not depend on them), or --student's. The bundled model's teacher runs its own "
    "sampler (defaults.json).",
)
@click.option("--student", default=None, help="A trained student checkpoint to time instead of random-weight ones.")
@click.option("--students-only", is_flag=True, help="Time only the teacher against the students.")
@click.option("--json", "json_out", default=None, help="Write every figure, the machine and versions here.")
@click.option("--markdown", default=None, help="Write the table as markdown here.")
@click.option("--plot", default=None, help="Write a PNG of the scaling curves here (matplotlib).")
def bench_main(layouts, scaling, no_onnx, precisions, bundles, json_out, markdown, plot, student_steps,
               **settings) -> None:  # fmt: skip
    """Time the released-style full predictor against the cached one, PyTorch against ONNX Runtime,
    precisions (or --bundle bundles) side by side against this CPU's GEMM peak, the host overhead of the
    denoising loop and the scaling with history length."""
    console_logging()
    main, *extra = layouts
    if main.size is None or main.pixels:
        raise click.BadParameter(f"{main}: the first --layout gives the latent size, M,G,HxW (e.g. 56,24,8x8)")
    try:
        histories = tuple(int(v) for v in scaling.split(","))
    except ValueError as err:
        raise click.BadParameter(f"cannot parse sizes: {err}") from None
    if min(histories) < 1:
        raise click.BadParameter("history lengths must be positive")
    if settings["live"] and plot:
        raise click.BadParameter("--plot draws the scaling series, which --live does not run", param_hint="--plot")
    if settings["live"] and (student_steps or settings["student"]):
        raise click.UsageError("--live times the live stream's KV caches alone: time the students in another run")
    if settings["students_only"] and not (student_steps or settings["student"]):
        raise click.UsageError("--students-only times the students: give --students K,... or --student PATH")
    if plot and settings["students_only"]:
        raise click.UsageError("--plot draws the scaling series, which --students-only skips")
    from vgpt.runtime.bench import BenchConfig
    from vgpt.runtime.student_bench import check_student_steps

    if student_steps:
        try:
            settings["student_steps"] = check_student_steps(tuple(int(v) for v in student_steps.split(",")))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--students") from None

    # The other options (model, steps, guidance, repeats, warmup, threads, cpp, thread_settings, drift,
    # profile, scaling_steps) are BenchConfig's fields by the same names.
    config = BenchConfig(history=main.history, clip=main.clip, latent=main.size,
                         extra_layouts=tuple((lay.history, lay.clip) for lay in extra), scaling_histories=histories,
                         onnx=not no_onnx, bundles=tuple(bundles), **settings,
                         **({"precisions": tuple(precisions)} if precisions else {}))  # fmt: skip
    with user_errors():
        _bench(config, json_out, markdown, plot)


def _bench(config, json_out: str | None, markdown: str | None, plot: str | None) -> None:
    from vgpt.runtime.bench import plot as plot_report
    from vgpt.runtime.bench import run_bench, table, write_json

    report = run_bench(config)
    text = table(report)
    click.echo(text)
    if json_out:
        write_json(report, json_out)
    if markdown:
        Path(markdown).write_text(text + "\n")
    if plot:
        plot_report(report, plot)


def _in_user_errors(fn, *args):
    with user_errors():
        return fn(*args)


@command
@click.option("--checkpoint", default=None, help="Model checkpoint (default: the bundled model).")
@click.option("--codec", default=None, help="Codec folder (default: the bundled codec).")
@click.option(
    "--bundle",
    default=None,
    help="An export bundle (fp32/fp16/FP8/INT8) to evaluate through ONNX Runtime, "
    "with its own layout and sampler, instead of a checkpoint.",
)
@click.option(
    "--videos", default=None, help="Videos or ROS 2 bags to evaluate on (default: held-out synthetic scenes)."
)
@bag_options
@click.option("--count", type=POSITIVE, default=64, show_default=True, help="Clips to evaluate.")
@click.option("--seed-start", type=SEED, default=EVAL_SEED_START, show_default=True, help="First synthetic scene seed.")
@click.option(
    "--layout",
    type=LAYOUT,
    default=None,
    help="M observed frames, G predicted frames per clip, and the frame size as HxWpx or latent HxW "
    "(default: the model's; M,G keeps its frame size).",
)
@click.option("--steps", type=POSITIVE, default=None, help="Denoising steps (default: the bundle's).")
@click.option("--guidance", type=GUIDANCE, default=None, help="Guidance scale (default: the bundle's).")
@click.option(
    "--shift",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Schedule shift (default: the model's, {_BUNDLED.shift:g} for the bundled one).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Sampler noise seed.")
@click.option(
    "--num-clips",
    type=POSITIVE,
    default=None,
    help="Clips rolled out per scene; each after the first conditions on predicted frames (default 2).",
)
@click.option("--json", "json_out", default=None, help="Also write every figure to this JSON file.")
@click.option("--plot", default=None, help="Also plot the figures by horizon to this PNG (needs matplotlib).")
@click.option("--sheet", default=None, help="Also write a contact sheet PNG: observed, true, predicted, baselines.")
@click.option("--sheet-clips", type=POSITIVE, default=None, help="Scenes on the contact sheet (default 1).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar (on a terminal).")
@click.option(
    "--student",
    "students",
    multiple=True,
    help="A student distilled from --checkpoint (vgpt-distill; repeatable): report the teacher, the teacher cut "
    "to the student's K steps and each student side by side on the same scenes and noise.",
)
@click.option("--threads", type=THREADS, default=None, help=THREADS_HELP)
@_model_option("to evaluate (with no --checkpoint, or one laid out like the bundled one)")
def eval_main(checkpoint, codec, bundle, videos, topic, fps, count, seed_start, layout, steps, guidance, shift, seed,
              num_clips, json_out, plot, sheet, sheet_clips, progress, students, threads,
              model_name) -> None:  # fmt: skip
    """Prediction quality by pixels (MSE, PSNR, SSIM) and, on synthetic scenes, by objects (are the balls
    still there, and where), against copy-last-frame and constant-velocity baselines."""
    from vgpt.checkpoint import read_student
    from vgpt.evaluation import EvalConfig
    from vgpt.runtime.evaluate import evaluate

    console_logging("%(asctime)s %(message)s", "%H:%M:%S")
    torch_threads(threads)
    defaults = Defaults()
    if bundle is not None:
        fixed = {"--checkpoint": checkpoint, "--codec": codec, "--layout": layout, "--steps": steps,
                 "--guidance": guidance, "--shift": shift, "--model": model_name}  # fmt: skip
        given = [k for k, v in fixed.items() if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --bundle: a bundle's model, layout "
                                   "and sampler are baked into its graphs")  # fmt: skip
    else:  # the bundled default, a checkpoint or a training run; its codec, --codec or the bundled one
        if students and checkpoint is None and model_name is None:
            model_name = "teacher"  # --student compares with the teacher, whichever model is the default
        checkpoint, codec, defaults = _in_user_errors(resolve_checkpoint, checkpoint, codec, model_name)
        given = [k for k, v in {"--steps": steps, "--guidance": guidance, "--shift": shift}.items() if v is not None]
        if given and _in_user_errors(read_student, checkpoint) is not None:
            raise click.UsageError(f"{', '.join(given)}: {checkpoint} is a distilled student, which samples its own "
                                   "recorded K-step table with one branch")  # fmt: skip
    height, width = defaults.height, defaults.width
    if layout is not None and layout.size is not None:
        height, width = layout.size if layout.pixels else (8 * layout.size[0], 8 * layout.size[1])
    settings = {
        "history": layout.history if layout else defaults.history,
        "clip": layout.clip if layout else defaults.clip,
        "steps": steps or defaults.steps,
        "guidance": guidance or defaults.guidance,
        "shift": shift or defaults.shift,
        "height": height,
        "width": width,
    }
    # Options left out keep EvalConfig's defaults.
    given = {"num_clips": num_clips, "sheet_clips": sheet_clips}
    config = _in_user_errors(lambda: EvalConfig(
        checkpoint=checkpoint, codec=codec, bundle=bundle, videos=videos, topic=topic, fps=fps, count=count,
        seed_start=seed_start, seed=seed,
        plot=plot, sheet=sheet, progress=progress, **settings, **{k: v for k, v in given.items() if v is not None}
    ))  # fmt: skip
    if students:
        if bundle is not None:
            raise click.UsageError("--student compares checkpoints: give the teacher with --checkpoint, not --bundle")
        from vgpt.comparison import compare, comparison_table

        result = _in_user_errors(compare, config, list(students))
        click.echo(f"{result['clips']} clips, {result['history']} -> {result['num_clips']} x {result['clip']} frames, "
                   f"{result['source']}; NFE: network evaluations per clip")  # fmt: skip
        click.echo(comparison_table(result))
    else:
        result = _in_user_errors(evaluate, config)
        _echo_eval(result)
    if json_out:
        with atomic_file(json_out, "w") as f:
            f.write(json.dumps(result, indent=2))
    for path in (json_out, plot, sheet):
        if path:
            click.echo(f"wrote {path}")


def _echo_eval(result: dict) -> None:
    from vgpt.evaluation import horizon_table, miss_table

    click.echo(
        f"model_mse {result['model_mse']:.6f}  baseline_mse {result['baseline_mse']:.6f}  ratio {result['ratio']:.3f}"
        f"  (first clip; {result['clips']} clips, {result['history']} -> {result['num_clips']} x {result['clip']} "
        f"frames, {result['steps']} steps, guidance {result['guidance']}, shift {result['shift']}, {result['source']})"
    )
    click.echo(horizon_table(result))
    if result.get("objects") is not None:
        click.echo(miss_table(result))
