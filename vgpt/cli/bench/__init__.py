"""vgpt-bench: speed and memory side by side, in one run (the sections: suite, cpp, live, students; what they
share: timing). This module is the command alone and imports no torch, so that its --help stays fast."""

from __future__ import annotations

from pathlib import Path

import click

from vgpt.commands import GUIDANCE, LAYOUT, NON_NEGATIVE, POSITIVE, THREADS, command
from vgpt.config import SamplerConfig
from vgpt.errors import user_errors
from vgpt.progress import console_logging


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
@click.option("--steps", type=POSITIVE, default=SamplerConfig.steps, show_default=True)
@click.option("--guidance", type=GUIDANCE, default=SamplerConfig.guidance, show_default=True)
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
    from vgpt.cli.bench.students import check_student_steps
    from vgpt.cli.bench.timing import BenchConfig

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
    from vgpt.cli.bench.suite import plot as plot_report
    from vgpt.cli.bench.suite import run_bench, table, write_json

    report = run_bench(config)
    text = table(report)
    click.echo(text)
    if json_out:
        write_json(report, json_out)
    if markdown:
        Path(markdown).write_text(text + "\n")
    if plot:
        plot_report(report, plot)
