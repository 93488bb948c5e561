"""Thin CLIs: vgpt-train, vgpt-distill, vgpt-train-codec, vgpt-synth."""

from __future__ import annotations

import os
from pathlib import Path

import click

import vgpt.training
from vgpt.commands import (
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    THREADS,
    THREADS_HELP,
    bag_options,
    command,
    plural,
    torch_threads,
)
from vgpt.default_model import default_model
from vgpt.errors import user_errors
from vgpt.progress import console_logging
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video, write_dataset

_SCENE = SceneConfig()
# The stage files of training/stages/, named without importing torch (the help must stay fast): vgpt-distill's
# are the distill-*.json ones, vgpt-train's the others.
_STAGE_NAMES = sorted(p.stem for p in (Path(vgpt.training.__file__).parent / "stages").glob("*.json"))
DISTILL_STAGES = [name for name in _STAGE_NAMES if name.startswith("distill-")]
SHIPPED_STAGES = [name for name in _STAGE_NAMES if name not in DISTILL_STAGES]


def _logging() -> None:
    console_logging("%(asctime)s %(message)s", "%H:%M:%S")


def _run(fn, *args):
    with user_errors():
        return fn(*args)


def _choose_codec(config):
    """Without a codec: the bundled one, unless the latent cache was filled by another codec (a run over
    those cached latents needs none; a run into the same folder again, or `--resume auto`, finds the
    bundled codec's latents and takes the bundled codec again)."""
    from vgpt.codecs import codec_id
    from vgpt.training.data import recorded_codec

    if config.codec is not None:
        return config
    bundled = _run(default_model).codec_dir
    recorded = recorded_codec(config.latent_cache_dir)
    if recorded is None or recorded == codec_id(bundled):
        click.echo(f"note: no codec given (--codec or the config's): using the bundled codec {bundled}")
        return config.replace(codec=str(bundled))
    click.echo(f"note: no codec given: training on the latents cached in {config.latent_cache_dir} (codec "
               f"{recorded[:12]}...); pass that codec with --codec to encode videos not yet cached")  # fmt: skip
    return config


@command
@click.option(
    "--config",
    "config_path",
    required=True,
    help=f"A JSON training config, or a shipped stage: {', '.join(SHIPPED_STAGES)}.",
)
@click.option("--data", default=None, help="Videos or ROS 2 bags: a folder, a glob pattern or a list file (overrides "
              "the config).")  # fmt: skip
@bag_options
@click.option("--out", default=None, help="Output folder (checkpoints, logs).")
@click.option("--codec", default=None, help="Codec folder (light codec or diffusers AutoencoderKL).")
@click.option("--init", default=None, help="Start from this checkpoint (e.g. the previous stage's model/).")
@click.option("--steps", type=POSITIVE, default=None, help="Optimizer steps.")
@click.option("--batch-size", type=POSITIVE, default=None, help="Samples per process and micro-batch.")
@click.option("--grad-accum", type=POSITIVE, default=None, help="Micro-batches per optimizer step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate.")
@click.option("--warmup-steps", type=NON_NEGATIVE, default=None, help="Linear warm-up steps.")
@click.option("--workers", type=NON_NEGATIVE, default=None, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=POSITIVE, default=None, help="Steps between checkpoints.")
@click.option("--resume", default=None, help="'auto' (the latest checkpoint in --out) or a checkpoint folder.")
@click.option("--strategy", type=click.Choice(["ddp", "fsdp"]), default=None, help="With torchrun: DDP or FSDP.")
@click.option("--seed", type=SEED, default=None, help="Seed of initialisation, data and noise.")
@click.option("--tensorboard/--no-tensorboard", default=None, help="Log to OUT/tensorboard.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar.")
@click.option("--threads", type=THREADS, default=None, help=THREADS_HELP)
def train_main(config_path, data, topic, fps, out, codec, init, steps, batch_size, grad_accum, lr, warmup_steps,
               workers, checkpoint_every, resume, strategy, seed, tensorboard, progress, threads) -> None:  # fmt: skip
    """Train Video-GPT or GPDiT (the config's preset names the family) by next clip diffusion. Run under
    torchrun for several processes."""
    from vgpt.training.config import load_train_config
    from vgpt.training.loop import train

    _logging()
    overrides = {
        "data.source": data, "data.topic": topic, "data.fps": fps,
        "out_dir": out, "codec": codec, "init": init, "steps": steps, "batch_size": batch_size,
        "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup_steps, "workers": workers,
        "checkpoint_every": checkpoint_every, "resume": resume, "strategy": strategy, "seed": seed,
        "tensorboard": tensorboard, "progress": progress,
    }  # fmt: skip
    config = _run(lambda: load_train_config(config_path, **overrides))
    config = _choose_codec(config)
    torch_threads(threads)
    last = _run(train, config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"last checkpoint: {last}")


@command
@click.option(
    "--config",
    "config_path",
    required=True,
    help=f"A JSON distillation config, or a shipped stage: {', '.join(DISTILL_STAGES)}.",
)
@click.option("--teacher", default=None, help="The guided teacher checkpoint (default: the config's, else the "
              "bundled default model).")  # fmt: skip
@click.option("--init", default=None, help="Start the student from this checkpoint or run (stage 2: the stage-1 run).")
@click.option("--data", default=None, help="Videos: a folder, a glob pattern or a list file (overrides the config).")
@click.option("--out", default=None, help="Output folder (checkpoints, logs).")
@click.option("--codec", default=None, help="Codec folder (default: the one beside the teacher).")
@click.option("--student-steps", type=click.Choice(["1", "2", "4"]), default=None, help="K: the student's steps.")
@click.option("--steps", type=POSITIVE, default=None, help="Optimizer steps.")
@click.option("--batch-size", type=POSITIVE, default=None, help="Samples per process.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="The student's learning rate.")
@click.option("--checkpoint-every", type=POSITIVE, default=None, help="Steps between checkpoints.")
@click.option("--resume", default=None, help="'auto' (the latest checkpoint in --out) or a checkpoint folder.")
@click.option("--seed", type=SEED, default=None, help="Seed of data order and noise.")
@click.option("--tensorboard/--no-tensorboard", default=None, help="Log to OUT/tensorboard.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar.")
def distill_main(config_path, teacher, init, data, out, codec, student_steps, steps, batch_size, lr, checkpoint_every,
                 resume, seed, tensorboard, progress) -> None:  # fmt: skip
    """Distill a few-step, one-branch student from a guided teacher (stage 1: consistency distillation;
    stage 2: its own rollouts with distribution matching). Run under torchrun for several processes."""
    from vgpt.training.distill import distill
    from vgpt.training.distill_config import load_distill_config

    _logging()
    overrides = {
        "teacher": teacher, "init": init, "data.source": data, "out_dir": out, "codec": codec,
        "student_steps": None if student_steps is None else int(student_steps), "steps": steps,
        "batch_size": batch_size, "lr": lr, "checkpoint_every": checkpoint_every, "resume": resume, "seed": seed,
        "tensorboard": tensorboard, "progress": progress,
    }  # fmt: skip
    config = _run(lambda: load_distill_config(config_path, **overrides))
    last = _run(distill, config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"last checkpoint: {last} (the student: {last}/model)")


@command
@click.option("--data", required=True, help="Videos or ROS 2 bags: a folder, a glob pattern or a list file.")
@bag_options
@click.option("--out", required=True, help="Folder for the trained codec.")
@click.option("--steps", type=POSITIVE, default=2000, show_default=True)
@click.option("--batch-size", type=POSITIVE, default=8, show_default=True, help="Samples of --frames frames each.")
@click.option("--frames", type=POSITIVE, default=4, show_default=True, help="Frames per sample.")
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True, help="Frame height and width (px).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--eval-count", type=POSITIVE, default=64, show_default=True, help="Held-out synthetic scenes for the PSNR."
)
@click.option(
    "--save-every", type=NON_NEGATIVE, default=0, show_default=True, help="Also save every N steps (0: at the end)."
)
@click.option("--init", default=None, help="Continue from this codec folder.")
@click.option(
    "--latent-channels",
    type=POSITIVE,
    default=4,
    show_default=True,
    help="Latent channels of a fresh codec (a codec given by --init keeps its own).",
)
@click.option("--stop-after", type=POSITIVE, default=None, help="Run only this many steps of the --steps schedule.")
@click.option(
    "--decoder-only",
    is_flag=True,
    help="Train the decoder alone (needs --init): the latents, and models trained on them, stay valid.",
)
@click.option(
    "--foreground-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Extra loss weight on pixels far from the frame's dominant colour (small objects).",
)
@click.option("--force", is_flag=True, help="Replace a codec already in --out (and an unfinished run's checkpoints).")
@click.option(
    "--checkpoint-every",
    type=NON_NEGATIVE,
    default=500,
    show_default=True,
    help="Training state into OUT.checkpoints/ every N steps (0: never); removed once the codec is saved.",
)
@click.option(
    "--resume",
    type=click.Choice(["auto"]),
    default=None,
    help="'auto': continue the run into --out from its latest checkpoint, exactly (nothing to do if it finished).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar (on a terminal).")
def train_codec_main(data, topic, fps, out, steps, batch_size, frames, size, lr, seed, eval_count, save_every, init,
                     latent_channels, stop_after, decoder_only, foreground_weight, force, checkpoint_every, resume,
                     progress) -> None:  # fmt: skip
    """Train the light codec (8x down-sampling, 4 latent channels by default) and report its
    reconstruction PSNR and the balls its round trip keeps (the most any model on its latents can show)."""
    import torch

    from vgpt.frames import fit_frames
    from vgpt.training.codec import (
        CodecTrainConfig,
        codec_psnr,
        finished_codec,
        round_trip_objects,
        save_trained_codec,
        train_codec,
    )
    from vgpt.training.data import DataConfig

    if decoder_only and init is None:
        raise click.UsageError("--decoder-only trains the decoder of an existing codec: give it with --init")
    _logging()
    config = CodecTrainConfig(data=DataConfig(source=data, topic=topic, fps=fps, num_frames=frames, height=size,
                                              width=size, seed=seed),
                              out=out, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                              save_every=save_every, init=init, latent_channels=latent_channels,
                              stop_after=stop_after, decoder_only=decoder_only, foreground_weight=foreground_weight,
                              force=force, checkpoint_every=checkpoint_every, resume=resume,
                              progress=progress)  # fmt: skip
    done = finished_codec(config)
    if done is not None:
        click.echo(f"{out} is this run's codec already ({done['steps']} steps): nothing to do")
        return
    codec, report = _run(train_codec, config)
    scene = SceneConfig(height=size, width=size, frames=8)
    held_out = torch.cat([fit_frames(render_video(s, scene), size, size)
                          for s in range(EVAL_SEED_START, EVAL_SEED_START + eval_count)])  # fmt: skip
    report["psnr_db"] = codec_psnr(codec, held_out)
    report["psnr_set"] = f"{eval_count} synthetic scenes x 8 frames, seeds from {EVAL_SEED_START}"
    report["round_trip"] = trip = round_trip_objects(codec, eval_count, size)
    report["steps"] = stop_after or steps
    report["schedule_steps"] = steps
    report["init"] = init
    report["foreground_weight"] = foreground_weight
    save_trained_codec(codec, out, report)

    def fmt(x, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    by_frame = " ".join(fmt(p, ".2f") for p in trip["presence_by_horizon"])
    click.echo(f"codec PSNR {report['psnr_db']:.2f} dB on {report['psnr_set']}; round trip keeps "
               f"{fmt(trip['presence'], '.3f')} of {trip['scored']} balls (by frame {by_frame}), colour error "
               f"{fmt(trip['colour_error'], '.3f')}, on {trip['set']}; saved {out}")  # fmt: skip


@command
@click.option("--out", required=True, help="Folder for the videos (scene-SEED.mp4).")
@click.option("--count", type=POSITIVE, default=100, show_default=True)
@click.option(
    "--seed-start",
    type=SEED,
    default=0,
    show_default=True,
    help=f"First seed; seeds from {EVAL_SEED_START} on are the held-out evaluation set.",
)
@click.option("--frames", type=POSITIVE, default=_SCENE.frames, show_default=True)
@click.option(
    "--size", type=click.IntRange(min=16), default=_SCENE.height, show_default=True, help="Frame height and width (px)."
)
def synth_main(out, count, seed_start, frames, size) -> None:
    """Write synthetic physics videos (bouncing balls under gravity) as H.264 files."""
    scene = SceneConfig(height=size, width=size, frames=frames)
    paths = _run(write_dataset, out, range(seed_start, seed_start + count), scene)
    click.echo(f"wrote {plural(len(paths), 'video')} to {out}")


if __name__ == "__main__":  # `python -m vgpt.cli.train` is vgpt-train (what torchrun launches)
    train_main()
