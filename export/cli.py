"""vgpt-export: a checkpoint (ours or the released one) -> static ONNX graphs per layout."""

from __future__ import annotations

import logging
import re

import click

from vgpt.checkpoint import CheckpointError
from vgpt.config import ConfigError
from vgpt.export.onnx_export import SUPPORTED_OPSETS

_LAYOUT = re.compile(r"^(\d+),(\d+),(\d+)x(\d+)(px)?$")


def _layouts(values, model_config, defaults):
    from vgpt.config import Layout

    layouts = []
    for value in values:
        m = _LAYOUT.match(value.strip())
        if not m:
            raise click.BadParameter(f"{value!r}: expected M,G,HxW (latents) or M,G,HxWpx (pixels), e.g. 4,4,64x64px")
        M, G, a, b = (int(x) for x in m.groups()[:4])
        make = Layout.from_pixels if m.group(5) else Layout.for_model
        layouts.append(make(model_config, M, G, a, b))
    if not layouts:
        layouts.append(Layout.from_pixels(model_config, defaults["history"], defaults["clip"], defaults["height"],
                                          defaults["width"]))  # fmt: skip
    return tuple(layouts)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", default=None, help="vgpt or released checkpoint folder (default: the bundled model).")
@click.option("--codec", default=None, help="Codec folder (default: the bundled codec, or the checkpoint's vae/).")
@click.option("--out", default=None, help="Output folder for the bundle.")
@click.option(
    "--layout",
    "layouts",
    multiple=True,
    help="M,G,HxW in latents or M,G,HxWpx in pixels; repeat for several (default: the bundle's).",
)
@click.option("--steps", type=int, default=None, help="Denoising steps baked into the schedule.")
@click.option("--guidance", type=float, default=None, help="Guidance scale baked into the step (1 = off).")
@click.option("--shift", type=float, default=None, help="Schedule shift.")
@click.option(
    "--opset",
    type=click.Choice([str(o) for o in SUPPORTED_OPSETS]),
    default="23",
    show_default=True,
    help="23: fused Attention/RMSNormalization (TensorRT >= 10.15); 18: plain ops (TensorRT >= 10.0).",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Model weights and KV cache dtype.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="onnx.checker and ONNX Runtime against PyTorch (Polygraphy); a failure leaves no bundle.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/.pt checkpoint weights (weights_only=True).")
@click.option(
    "--check-only",
    "check_only",
    default=None,
    metavar="BUNDLE",
    help="Only print the TensorRT readiness report of an existing bundle.",
)
def export_main(checkpoint, codec, out, layouts, steps, guidance, shift, opset, dtype, verify, force, allow_pickle,
                check_only) -> None:  # fmt: skip
    """Export prefill, denoise-step and codec graphs with masks, positions and schedule baked in."""
    from vgpt.export.manifest import BundleError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if check_only:
            _check_only(check_only)
            return
        if not out:
            raise click.UsageError("--out is required (or use --check-only BUNDLE)")
        _export(checkpoint, codec, out, layouts, steps, guidance, shift, int(opset), dtype, verify, force,
                allow_pickle)  # fmt: skip
    except (ConfigError, CheckpointError, BundleError, FileExistsError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err


def _check_only(path) -> None:
    from vgpt.export.manifest import load_bundle
    from vgpt.export.readiness import check_graph

    bundle = load_bundle(path)
    ready = True
    for entry in bundle.layouts:
        for graph in entry.graphs:
            report = check_graph(entry.path(graph), f"{entry.name}/{graph}")
            ready &= report.ready
            click.echo(str(report))
    if not ready:
        raise click.ClickException("some graphs are not ready for TensorRT (see above)")


def _export(checkpoint, codec_path, out, layout_args, steps, guidance, shift, opset, dtype, verify, force,
            allow_pickle) -> None:  # fmt: skip
    from pathlib import Path

    from vgpt.bundled import bundled_default
    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import load_codec
    from vgpt.export.bundle import ExportConfig, export_bundle
    from vgpt.sampler import SamplerConfig

    defaults = {"history": 4, "clip": 4, "height": 64, "width": 64, "steps": 50, "guidance": 1.5, "shift": 1.0}
    if checkpoint is None:
        bundle = bundled_default()
        checkpoint, codec_path = str(bundle.model_dir), codec_path or str(bundle.codec_dir)
        defaults.update(bundle.settings)
    if codec_path is None:
        vae = Path(checkpoint) / "vae"
        if not vae.is_dir():
            raise FileNotFoundError(f"no --codec given and {checkpoint} has no vae/ folder; pass --codec")
        codec_path = str(vae)
    loaded = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
    codec = load_codec(codec_path)
    sampler = SamplerConfig(steps=steps or defaults["steps"], guidance=guidance or defaults["guidance"],
                            shift=shift or defaults["shift"])  # fmt: skip
    config = ExportConfig(layouts=_layouts(layout_args, loaded.model.config, defaults), sampler=sampler, opset=opset,
                          dtype=dtype, verify=verify)  # fmt: skip
    sources = {"checkpoint": str(checkpoint), "codec": str(codec_path), "checkpoint_sha256": loaded.weights_sha256}
    manifest = export_bundle(loaded.model, codec, out, config, sources=sources, overwrite=force)
    for entry in manifest["layouts"]:
        for name, graph in entry["graphs"].items():
            size = sum(f["bytes"] for f in graph["files"].values())
            trt = graph["tensorrt"]
            verdict = (
                f"TensorRT >= {trt['min_version']}" if trt["ready"] else f"not TensorRT-ready {trt['unsupported']}"
            )
            click.echo(f"{entry['name']}/{name}.onnx: {size / 1e6:.1f} MB, {graph['nodes']} nodes, {verdict}")
    click.echo(f"wrote {out} ({manifest['sampler']['steps']} steps, guidance {sampler.guidance}, "
               f"opset {opset}, {dtype})")  # fmt: skip
