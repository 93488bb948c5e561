"""Thin CLIs: vgpt-train, vgpt-train-codec, vgpt-eval, vgpt-synth."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

from vgpt.checkpoint import CheckpointError
from vgpt.config import ConfigError
from vgpt.export.manifest import BundleError
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, write_dataset
from vgpt.video import VideoError

_ERRORS = (ConfigError, CheckpointError, BundleError, VideoError, FileNotFoundError, FileExistsError, ValueError)
_SCENE = SceneConfig()


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")


def _run(fn, *args):
    try:
        return fn(*args)
    except _ERRORS as err:
        raise click.ClickException(str(err)) from err


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    required=True,
    help="A JSON training config, or a shipped stage: stage1..stage4, bundled.",
)
@click.option("--data", default=None, help="Videos: a folder, a glob pattern or a list file (overrides the config).")
@click.option("--out", default=None, help="Output folder (checkpoints, logs).")
@click.option("--codec", default=None, help="Codec folder (light codec or diffusers AutoencoderKL).")
@click.option("--init", default=None, help="Start from this checkpoint (e.g. the previous stage's model/).")
@click.option("--steps", type=int, default=None, help="Optimizer steps.")
@click.option("--batch-size", type=int, default=None, help="Samples per process and micro-batch.")
@click.option("--grad-accum", type=int, default=None, help="Micro-batches per optimizer step.")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--warmup-steps", type=int, default=None, help="Linear warm-up steps, then constant.")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints.")
@click.option("--resume", default=None, help="'auto' (the latest checkpoint in --out) or a checkpoint folder.")
@click.option("--strategy", type=click.Choice(["ddp", "fsdp"]), default=None, help="With torchrun: DDP or FSDP.")
@click.option("--seed", type=int, default=None, help="Seed of initialisation, data and noise.")
@click.option("--tensorboard/--no-tensorboard", default=None, help="Log to OUT/tensorboard.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar.")
def train_main(config_path, data, out, codec, init, steps, batch_size, grad_accum, lr, warmup_steps, workers,
               checkpoint_every, resume, strategy, seed, tensorboard, progress) -> None:  # fmt: skip
    """Train Video-GPT by next clip diffusion. Run under torchrun for several processes."""
    from vgpt.training.config import load_train_config
    from vgpt.training.loop import train

    _logging()
    overrides = {
        "data.source": data, "out_dir": out, "codec": codec, "init": init, "steps": steps, "batch_size": batch_size,
        "grad_accum": grad_accum, "lr": lr, "warmup_steps": warmup_steps, "workers": workers,
        "checkpoint_every": checkpoint_every, "resume": resume, "strategy": strategy, "seed": seed,
        "tensorboard": tensorboard, "progress": progress,
    }  # fmt: skip
    config = _run(lambda: load_train_config(config_path, **overrides))
    last = _run(train, config)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"last checkpoint: {last}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", required=True, help="Videos: a folder, a glob pattern or a list file.")
@click.option("--out", required=True, help="Folder for the trained codec.")
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch-size", default=8, show_default=True, help="Samples of --frames frames each.")
@click.option("--frames", default=4, show_default=True, help="Frames per sample.")
@click.option("--size", default=64, show_default=True, help="Frame height and width (px).")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--eval-count", default=64, show_default=True, help="Held-out synthetic scenes for the PSNR.")
@click.option("--save-every", default=0, show_default=True, help="Also save every N steps (0: at the end only).")
@click.option("--init", default=None, help="Continue from this codec folder.")
@click.option("--stop-after", type=int, default=None, help="Run only this many steps of the --steps schedule.")
def train_codec_main(data, out, steps, batch_size, frames, size, lr, seed, eval_count, save_every, init,
                     stop_after) -> None:  # fmt: skip
    """Train the light codec (8x down-sampling, 4 channels) and report its reconstruction PSNR."""
    import torch

    from vgpt.frames import fit_frames
    from vgpt.synthetic import render_video
    from vgpt.training.codec import CodecTrainConfig, codec_psnr, save_trained_codec, train_codec
    from vgpt.training.data import DataConfig

    _logging()
    config = CodecTrainConfig(data=DataConfig(source=data, num_frames=frames, height=size, width=size, seed=seed),
                              out=out, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                              save_every=save_every, init=init, stop_after=stop_after)  # fmt: skip
    codec, report = _run(train_codec, config)
    scene = SceneConfig(height=size, width=size, frames=8)
    held_out = torch.cat([fit_frames(render_video(s, scene), size, size)
                          for s in range(EVAL_SEED_START, EVAL_SEED_START + eval_count)])  # fmt: skip
    report["psnr_db"] = codec_psnr(codec, held_out)
    report["psnr_set"] = f"{eval_count} synthetic scenes x 8 frames, seeds from {EVAL_SEED_START}"
    report["steps"] = stop_after or steps
    report["schedule_steps"] = steps
    report["init"] = init
    save_trained_codec(codec, out, report)
    click.echo(f"codec PSNR {report['psnr_db']:.2f} dB on {report['psnr_set']}; saved {out}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", default=None, help="Model checkpoint (default: the bundled model).")
@click.option("--codec", default=None, help="Codec folder (default: the bundled codec).")
@click.option(
    "--bundle",
    default=None,
    help="An export bundle (fp32/fp16/FP8/INT8) to evaluate through ONNX Runtime, "
    "with its own layout and sampler, instead of a checkpoint.",
)
@click.option("--videos", default=None, help="Videos to evaluate on (default: held-out synthetic scenes).")
@click.option("--count", default=64, show_default=True, help="Clips to evaluate.")
@click.option("--seed-start", default=EVAL_SEED_START, show_default=True, help="First synthetic scene seed.")
@click.option("--history", type=int, default=None, help="Observed frames M (default: the bundle's).")
@click.option("--clip", type=int, default=None, help="Predicted frames G (default: the bundle's).")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the bundle's).")
@click.option("--guidance", type=float, default=None, help="Guidance scale (default: the bundle's).")
@click.option("--seed", default=0, show_default=True, help="Sampler noise seed.")
@click.option("--json", "json_out", default=None, help="Also write the figures to this JSON file.")
def eval_main(checkpoint, codec, bundle, videos, count, seed_start, history, clip, steps, guidance, seed,
              json_out) -> None:  # fmt: skip
    """Mean pixel MSE of predicted clips against the copy-last-frame baseline."""
    from vgpt.bundled import bundled_default
    from vgpt.training.evaluate import EvalConfig, evaluate

    _logging()
    defaults: dict = {}
    if bundle is not None:
        fixed = {"--checkpoint": checkpoint, "--codec": codec, "--history": history, "--clip": clip, "--steps": steps,
                 "--guidance": guidance}  # fmt: skip
        given = [k for k, v in fixed.items() if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be combined with --bundle: a bundle's model, layout "
                                   "and sampler are baked into its graphs")  # fmt: skip
    elif checkpoint is None or codec is None:
        default = _run(bundled_default)
        checkpoint = checkpoint or str(default.model_dir)
        codec = codec or str(default.codec_dir)
        defaults = default.settings
    settings = {
        "history": history or defaults.get("history", 4),
        "clip": clip or defaults.get("clip", 4),
        "steps": steps or defaults.get("steps", 50),
        "guidance": guidance or defaults.get("guidance", 1.5),
        "height": defaults.get("height", 64),
        "width": defaults.get("width", 64),
    }
    config = EvalConfig(checkpoint=checkpoint, codec=codec, bundle=bundle, videos=videos, count=count,
                        seed_start=seed_start, seed=seed, **settings)  # fmt: skip
    result = _run(evaluate, config)
    click.echo(
        f"model_mse {result['model_mse']:.6f}  baseline_mse {result['baseline_mse']:.6f}  ratio {result['ratio']:.3f}"
        f"  ({result['clips']} clips, {result['history']} -> {result['clip']} frames, {result['steps']} steps, "
        f"guidance {result['guidance']}, {result['source']})"
    )
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", required=True, help="Folder for the videos (scene-SEED.mp4).")
@click.option("--count", default=100, show_default=True)
@click.option(
    "--seed-start",
    default=0,
    show_default=True,
    help=f"First seed; seeds from {EVAL_SEED_START} on are the held-out evaluation set.",
)
@click.option("--frames", default=_SCENE.frames, show_default=True)
@click.option("--size", default=_SCENE.height, show_default=True, help="Frame height and width (px).")
def synth_main(out, count, seed_start, frames, size) -> None:
    """Write synthetic physics videos (bouncing balls under gravity) as H.264 files."""
    scene = SceneConfig(height=size, width=size, frames=frames)
    paths = _run(write_dataset, out, range(seed_start, seed_start + count), scene)
    click.echo(f"wrote {len(paths)} videos to {out}")
