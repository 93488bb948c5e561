"""vgpt-build: TensorRT engines for one layout of an export bundle."""

from __future__ import annotations

import logging

import click

from vgpt.commands import command
from vgpt.engines.build import build_bundle
from vgpt.engines.settings import ENGINE_PRECISIONS
from vgpt.errors import user_errors


@command
@click.option("--bundle", required=True, help="An export bundle folder (vgpt-export).")
@click.option("--out", required=True, help="Folder for model.plan, its siblings and engines.json.")
@click.option(
    "--precision",
    type=click.Choice(ENGINE_PRECISIONS),
    default="fp16",
    show_default=True,
    help="fp16/bf16/fp32: from an fp32 bundle with TensorRT 10's builder flags, or from a bundle exported in "
    "that dtype (--dtype float16/bfloat16; the only way on TensorRT 11, which is always strongly typed); "
    "fp8/int8 from a --fp8/--int8 bundle (strongly typed).",
)
@click.option("--layout", default=None, help="Layout name in the bundle (default: its only one).")
@click.option(
    "--opt-level", type=click.IntRange(0, 5), default=3, show_default=True, help="TensorRT builder optimization level."
)
@click.option(
    "--workspace-gib", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
    help="Builder workspace limit.",
)  # fmt: skip
@click.option("--timing-cache", default=None, help="Timing cache file, reused across builds (default: beside --out).")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
def build_main(bundle, out, precision, layout, opt_level, workspace_gib, timing_cache, force) -> None:
    """Build TensorRT engines (static shapes, one profile) from a bundle, on the GPU they will run on."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with user_errors():
        manifest = build_bundle(bundle, out, precision, layout, opt_level, workspace_gib, timing_cache, force)
    for graph, engine in manifest.plans.items():
        click.echo(f"{engine.file} ({graph}): {engine.bytes / 1e6:.1f} MB")
    click.echo(f"wrote {out}: TensorRT {manifest.tensorrt_version}, {manifest.gpu.name}, {precision}")
