"""vgpt-eval: prediction quality by pixels and, on synthetic scenes, by objects, against baselines."""

from __future__ import annotations

import json

import click

from vgpt.atomic import atomic_file
from vgpt.cli.options import BUNDLED, model_option
from vgpt.commands import (
    BUNDLE_LAYOUT,
    GUIDANCE,
    POSITIVE,
    SEED,
    THREADS,
    THREADS_HELP,
    bag_options,
    command,
    torch_threads,
)
from vgpt.default_model import Defaults, resolve_checkpoint
from vgpt.errors import user_errors
from vgpt.progress import console_logging
from vgpt.synthetic import EVAL_SEED_START


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
    type=BUNDLE_LAYOUT,
    default=None,
    help="M observed frames, G predicted frames per clip, and the frame size as HxWpx or latent HxW "
    "(default: the model's; M,G keeps its frame size); with --bundle, which of its layouts (or its name).",
)
@click.option("--steps", type=POSITIVE, default=None, help="Denoising steps (default: the bundle's).")
@click.option("--guidance", type=GUIDANCE, default=None, help="Guidance scale (default: the bundle's).")
@click.option(
    "--shift",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Schedule shift (default: the model's, {BUNDLED.shift:g} for the bundled one).",
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
@model_option("to evaluate (with no --checkpoint, or one laid out like the bundled one)")
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
        fixed = {"--checkpoint": checkpoint, "--codec": codec, "--steps": steps,
                 "--guidance": guidance, "--shift": shift, "--model": model_name}  # fmt: skip
        given = [k for k, v in fixed.items() if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --bundle: a bundle's model and "
                                   "sampler are baked into its graphs")  # fmt: skip
    else:  # the bundled default, a checkpoint or a training run; its codec, --codec or the bundled one
        if students and checkpoint is None and model_name is None:
            model_name = "teacher"  # --student compares with the teacher, whichever model is the default
        checkpoint, codec, defaults = _in_user_errors(resolve_checkpoint, checkpoint, codec, model_name)
        given = [k for k, v in {"--steps": steps, "--guidance": guidance, "--shift": shift}.items() if v is not None]
        if given and _in_user_errors(read_student, checkpoint) is not None:
            raise click.UsageError(f"{', '.join(given)}: {checkpoint} is a distilled student, which samples its own "
                                   "recorded K-step table with one branch")  # fmt: skip
    if bundle is None and isinstance(layout, str):
        raise click.UsageError(f"--layout {layout} names one of a bundle's layouts: give --bundle, or M,G[,HxW]")
    request = None if bundle is not None else layout  # a bundle's: which of its layouts (EvalConfig.bundle_layout)
    own_size = (defaults.height, defaults.width)
    height, width = request.pixel_size(own_size) if request else own_size
    settings = {
        "history": request.history if request else defaults.history,
        "clip": request.clip if request else defaults.clip,
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
        seed_start=seed_start, seed=seed, bundle_layout=layout if bundle is not None else None,
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
