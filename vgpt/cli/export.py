"""vgpt-export: a checkpoint (ours or the released one) -> static ONNX graphs per layout."""

from __future__ import annotations

import sys
import time

import click

from vgpt.calibration.policy import DEFAULT_POLICY, POLICIES
from vgpt.calibration.report import REPORT_CLIPS_PER_CALIBRATION_CLIP, accuracy_report, summary, write_report
from vgpt.commands import GUIDANCE, LAYOUT, NON_NEGATIVE, POSITIVE, SEED, command, plural, sigterm_as_interrupt
from vgpt.default_model import resolve_checkpoint
from vgpt.errors import user_errors
from vgpt.export.manifest import load_bundle
from vgpt.export.readiness import check_graph
from vgpt.export.signing import load_signing_key
from vgpt.export.signing import new_signing_key as new_signing_key_files
from vgpt.export.spec import SUPPORTED_OPSETS
from vgpt.progress import console_logging
from vgpt.runtime.backends.ort_backend import OrtBackend


def _layouts(values, model_config, defaults):
    """The layouts asked for (`--layout`, as every command spells it), or the model's default."""
    size = (defaults.height, defaults.width)
    return tuple(v.resolve(model_config, size) for v in values) or (defaults.layout(model_config),)


@command
@click.option("--checkpoint", default=None, help="vgpt or released checkpoint folder (default: the bundled model).")
@click.option("--codec", default=None, help="Codec folder (default: the bundled codec, or the checkpoint's vae/).")
@click.option("--out", default=None, help="Output folder for the bundle.")
@click.option(
    "--layout",
    "layouts",
    type=LAYOUT,
    multiple=True,
    help="M,G,HxW in latents, M,G,HxWpx in pixels (M,G: the default size); repeat for several (default: the bundle's).",
)
@click.option("--steps", type=POSITIVE, default=None, help="Denoising steps baked into the schedule.")
@click.option("--guidance", type=GUIDANCE, default=None, help="Guidance scale baked into the step (1 = off).")
@click.option("--shift", type=click.FloatRange(min=0, min_open=True), default=None, help="Schedule shift.")
@click.option(
    "--opset",
    type=click.Choice([str(o) for o in SUPPORTED_OPSETS]),
    default="23",
    show_default=True,
    help="23: fused Attention/RMSNormalization (TensorRT >= 10.15); 18: plain ops (TensorRT >= 10.0).",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Model weights and KV cache dtype. TensorRT 11 builds fp16/bf16 engines only from float16/bfloat16 "
    "bundles; bfloat16 graphs are for TensorRT only (ONNX Runtime's CPU provider has no bf16 kernels), "
    "verified by onnx.checker and their dtypes.",
)
@click.option(
    "--kv-attention",
    type=click.Choice(["concat", "two_part"]),
    default="concat",
    show_default=True,
    help="How the denoising step attends the KV cache: concatenated with the clip's keys into one fused "
    "Attention (fastest under ONNX Runtime's CPU provider), or in two parts without copying the cache.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="onnx.checker and ONNX Runtime against PyTorch (Polygraphy); a failure leaves no bundle.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option(
    "--sign",
    "sign_key",
    default=None,
    metavar="KEY.pem",
    help="Sign the bundle with this Ed25519 private key (signature.json): runtimes given the public key "
    "(vgpt-run --trusted-key) then load only bundles it signed.",
)
@click.option(
    "--new-signing-key",
    default=None,
    metavar="PATH",
    help="Only write a new Ed25519 signing key to PATH (mode 0600) and its public key to PATH.pub, then exit.",
)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/.pt checkpoint weights (weights_only=True).")
@click.option(
    "--fp8",
    "precision",
    flag_value="fp8",
    help="Post-training FP8 (E4M3) quantization with ModelOpt (Ada/Hopper/Blackwell GPUs).",
)
@click.option(
    "--int8",
    "precision",
    flag_value="int8",
    help="Post-training INT8 quantization with ModelOpt (every TensorRT GPU, Jetson Orin included).",
)
@click.option("--fp32", "precision", flag_value="fp32", default=True, hidden=True)
@click.option(
    "--policy",
    type=click.Choice(sorted(POLICIES)),
    default=DEFAULT_POLICY,
    show_default=True,
    help="Which layers --fp8/--int8 quantize (the others stay fp32).",
)
@click.option("--calib-videos", default=None, help="Videos to calibrate on (default: synthetic scenes).")
@click.option("--calib-count", type=POSITIVE, default=32, show_default=True, help="Calibration clips.")
@click.option(
    "--calib-levels", type=POSITIVE, default=8, show_default=True, help="Noise levels recorded per calibration clip."
)
@click.option("--calib-seed", type=SEED, default=0, show_default=True, help="Calibration noise and clip-offset seed.")
@click.option(
    "--report-clips",
    type=NON_NEGATIVE,
    default=None,
    help=f"Held-out clips of the accuracy report of --fp8/--int8 (default: {REPORT_CLIPS_PER_CALIBRATION_CLIP} per "
    "calibration clip; 0: no report). Each runs the quantized bundle and the fp32 model through the whole sampler; "
    "the command prints the count before it starts and the time it took.",
)
@click.option(
    "--report-videos", default=None, help="Videos for the accuracy report (default: held-out synthetic scenes)."
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars (on a terminal).")
@click.option(
    "--check-only",
    "check_only",
    default=None,
    metavar="BUNDLE",
    help="Only print the TensorRT readiness report of an existing bundle.",
)
def export_main(check_only, new_signing_key, out, **options) -> None:
    """Export prefill, denoise-step and codec graphs with masks, positions and schedule baked in."""
    console_logging()
    if not check_only and not new_signing_key and not out:
        raise click.UsageError("--out is required (or use --check-only BUNDLE, --new-signing-key PATH)")
    with user_errors():
        if new_signing_key:
            public = new_signing_key_files(new_signing_key)
            click.echo(f"wrote the signing key {new_signing_key} (keep it secret) and its public key {public} "
                       "(give it to the runtimes: vgpt-run --trusted-key)")  # fmt: skip
            return
        if check_only:
            _check_only(check_only)
            return
        try:
            with sigterm_as_interrupt():  # SIGTERM stops like Ctrl-C: the unfinished bundle is removed
                _export(out, **options)
        except KeyboardInterrupt:
            click.echo(f"Interrupted: no bundle was written to {out}", err=True)
            sys.exit(130)


def _check_only(path) -> None:
    bundle = load_bundle(path)
    ready = True
    for entry in bundle.layouts:
        for graph in entry.graphs:
            report = check_graph(entry.path(graph), f"{entry.name}/{graph}")
            ready &= report.ready
            click.echo(str(report))
    if not ready:
        raise click.ClickException("some graphs are not ready for TensorRT (see above)")


def _export(out, checkpoint, codec, layouts, steps, guidance, shift, opset, dtype, kv_attention, verify, force,
            sign_key, allow_pickle, precision, policy, calib_videos, calib_count, calib_levels, calib_seed,
            report_clips, report_videos, progress) -> None:  # fmt: skip
    # torch loads here, not for --help
    from vgpt.calibration.data import CalibrationConfig
    from vgpt.calibration.quantizer import ModelOptQuantizer
    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import check_codec_fits, load_codec
    from vgpt.export.bundle import ExportConfig, export_bundle
    from vgpt.student import student_sampler

    opset = int(opset)
    signing_key = load_signing_key(sign_key) if sign_key else None  # a bad key fails before the export
    checkpoint, codec_path, defaults = resolve_checkpoint(checkpoint, codec)
    loaded = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
    codec = load_codec(codec_path)
    check_codec_fits(codec, loaded, codec_path)
    student = loaded.student  # a distilled student exports its own table with one branch
    if student is None:
        sampler = defaults.sampler(steps, guidance, shift)
    else:
        sampler = student_sampler(student, steps, guidance, shift, str(checkpoint))
    config = ExportConfig(layouts=_layouts(layouts, loaded.model.config, defaults), sampler=sampler, opset=opset,
                          dtype=dtype, kv_attention=kv_attention, verify=verify, precision=precision,
                          student=student)  # fmt: skip
    quantizer = None
    if config.quantized:
        calibration = CalibrationConfig(count=calib_count, levels=calib_levels, seed=calib_seed, videos=calib_videos)
        quantizer = ModelOptQuantizer(precision, policy, calibration, progress=progress)
    sources = {"checkpoint": str(checkpoint), "codec": str(codec_path), "checkpoint_sha256": loaded.weights_sha256}
    manifest = export_bundle(loaded.model, codec, out, config, sources=sources, overwrite=force, quantizer=quantizer,
                             signing_key=signing_key)  # fmt: skip
    for entry in manifest.layouts:
        for name, graph in entry.graphs.items():
            size = sum(f.bytes for f in graph.files.values())
            trt = graph.tensorrt
            verdict = f"TensorRT >= {trt.min_version}" if trt.ready else f"not TensorRT-ready {list(trt.unsupported)}"
            click.echo(f"{entry.name}/{name}.onnx: {size / 1e6:.1f} MB, {graph.nodes} nodes, {verdict}")
    distilled = f" distilled from {student.distilled_from[:12]}..." if student else ""
    click.echo(f"wrote {out} ({manifest.sampler.steps} steps, guidance {sampler.guidance}{distilled}, "
               f"opset {opset}, {dtype}, {precision}{', signed' if signing_key else ''})")  # fmt: skip
    report_clips = report_clips if report_clips is not None else REPORT_CLIPS_PER_CALIBRATION_CLIP * calib_count
    if quantizer is not None and report_clips > 0:
        _accuracy_report(out, checkpoint, codec_path, sampler, quantizer, allow_pickle, report_clips, report_videos)


def _accuracy_report(out, checkpoint, codec_path, sampler, quantizer, allow_pickle, count, videos) -> None:
    """The quantized bundle through ONNX Runtime against the fp32 model (reloaded: the export quantized
    its copy in place) on held-out clips, printed and written beside the manifest."""
    from vgpt.checkpoint import load_checkpoint
    from vgpt.codecs import load_codec
    from vgpt.evaluation import layout_clips
    from vgpt.runtime.backends.torch_backend import TorchBackend

    bundle = load_bundle(out)
    candidate = OrtBackend(bundle)
    reference = TorchBackend(load_checkpoint(checkpoint, allow_pickle=allow_pickle).model, load_codec(codec_path),
                             candidate.layout, sampler)  # fmt: skip
    clips, source = layout_clips(candidate.layout, count, videos)
    click.echo(f"accuracy report: {plural(count, 'held-out clip')}, each through the {quantizer.precision} bundle "
               f"and the fp32 model at {sampler.steps} steps (--report-clips sets the count, 0 skips it)")  # fmt: skip
    started = time.perf_counter()
    report = accuracy_report(candidate, reference, clips, seed=0, source=source, progress=quantizer.progress)
    report.update({"precision": quantizer.precision, "policy": quantizer.policy, "layout": bundle.layouts[0].name,
                   "reference": "fp32 model, eager PyTorch (equal to the fp32 ONNX graphs within 1e-5)"})  # fmt: skip
    path = write_report(out, report)
    click.echo(summary(report, quantizer.precision))
    click.echo(f"accuracy report: {path} ({time.perf_counter() - started:.0f} s)")
