"""Prediction quality by pixels and by objects, against two baselines: what `vgpt-eval` reports.

For each scene the model sees M frames and rolls out `num_clips` clips of G frames autoregressively,
as vgpt-run uses it: clip k conditions on the newest M frames, which after the first clip are
predicted ones. A checkpoint is rolled out here, eagerly (batched `CachedPredictor`); an export
bundle (fp32, fp16, FP8 or INT8 graphs) through a runtime backend, one scene at a time, by
`vgpt.runtime.evaluate` with the runtime's own clip loop.

Figures:
- `model_mse`, `baseline_mse`, `ratio`: mean pixel MSE (frames in [0, 1]) of the FIRST clip and of
  repeating the last observed frame, as this command has always reported them (comparable across
  versions; the first clip's noise does not depend on num_clips).
- By horizon (+1 .. +num_clips * G): PSNR and SSIM, and on synthetic scenes the object scores of
  `vgpt.metrics` (presence, centroid error, colour error), for the model and for two baselines from
  the observed frames alone: copy-last-frame and constant-velocity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vgpt import metrics as objects
from vgpt.atomic import atomic_file
from vgpt.checkpoint import load_checkpoint
from vgpt.clips import roll_clips
from vgpt.codecs import LatentCodec, check_codec_fits, load_codec
from vgpt.config import ConfigError
from vgpt.frames import fit_frames
from vgpt.layout import Layout, LayoutRequest
from vgpt.misses import miss_causes, summarise_misses
from vgpt.plotting import pyplot
from vgpt.predictors import CachedPredictor
from vgpt.progress import progress_bar
from vgpt.recordings import list_recordings, read_recording
from vgpt.sampler import SamplerConfig
from vgpt.sheet import SheetRow, contact_sheet, stack_sheets, write_png
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, SceneObjects, render_video, scene_objects
from vgpt.video import VideoError

log = logging.getLogger(__name__)

BASELINES = ("copy_last", "constant_velocity")
# Not a baseline but the ceiling of any latent prediction: the true future encoded and decoded.
ROUND_TRIP = "codec_round_trip"
_LABELS = {"model": "model", "copy_last": "copy last", "constant_velocity": "const. velocity",
           ROUND_TRIP: "codec round trip"}  # fmt: skip


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str | None = None
    codec: str | None = None
    bundle: str | None = None  # an export bundle instead of checkpoint + codec (its layout and sampler)
    bundle_layout: str | LayoutRequest | None = None  # which of the bundle's layouts (None: its first)
    history: int = 4  # M observed frames
    clip: int = 4  # G predicted frames
    height: int = 64
    width: int = 64
    steps: int = SamplerConfig.steps  # the sampler's defaults, read in one place (vgpt.config)
    guidance: float = SamplerConfig.guidance
    shift: float = SamplerConfig.shift
    videos: str | None = None  # a folder/glob/list of videos or bags; None: synthetic scenes
    topic: str | None = None  # bags: the image topic (None: each bag's only one)
    fps: float | None = None  # bags: frames per second sampled from the stamps (None: the bundled model's)
    seed_start: int = EVAL_SEED_START  # synthetic scenes: seeds training never uses
    count: int = 64
    batch: int = 16
    seed: int = 0  # sampler noise
    num_clips: int = 2  # clips rolled out per scene; the horizons are +1 .. +num_clips * G
    progress: bool = True  # a progress bar over the scenes
    plot: str | None = None  # write a PNG of the by-horizon figures here
    sheet: str | None = None  # write a contact sheet PNG (observed, true, predicted, baselines) here
    sheet_clips: int = 1  # scenes on the contact sheet

    def __post_init__(self) -> None:
        for name in ("count", "num_clips", "sheet_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"EvalConfig.{name}={value!r}: must be a positive integer")
        if self.sheet_clips > self.count:
            raise ConfigError(f"EvalConfig.sheet_clips={self.sheet_clips} is more than the {self.count} scenes "
                              "evaluated; ask for fewer sheet clips or a larger count")  # fmt: skip


def eval_clips(videos: str | None, count: int, seed_start: int, frames: int, height: int, width: int,
               topic: str | None = None, fps: float | None = None):  # fmt: skip
    """The evaluation clips: uint8 [frames, H, W, 3] each, the first `frames` of each video or bag (a bag's
    `topic` sampled at `fps`), or of each held-out synthetic scene."""
    if videos is None:
        scene = SceneConfig(height=height, width=width, frames=frames)
        return [render_video(s, scene) for s in range(seed_start, seed_start + count)]
    paths = list_recordings(videos)[:count]
    return [read_recording(p, range(frames), topic, fps) for p in paths]


def layout_clips(layout: Layout, count: int, videos: str | None = None, seed_start: int = EVAL_SEED_START,
                 num_clips: int = 1, topic: str | None = None, fps: float | None = None):  # fmt: skip
    """The evaluation clips of a layout (M + num_clips * G frames at its pixel size) and a description
    of them."""
    H, W = layout.pixel_size
    frames = layout.history_frames + num_clips * layout.clip_frames
    try:
        clips = eval_clips(videos, count, seed_start, frames, H, W, topic, fps)
    except VideoError as err:
        M, G = layout.history_frames, layout.clip_frames
        raise VideoError(f"{err}; {num_clips} clips of {G} frames after {M} observed ones need {frames} frames "
                         "per video: use longer videos or fewer clips (--num-clips)") from err  # fmt: skip
    return clips, videos or f"synthetic seeds {seed_start}..{seed_start + len(clips) - 1}"


def config_clips(config: EvalConfig, layout: Layout):
    """`layout_clips` of what an EvalConfig names."""
    return layout_clips(layout, config.count, config.videos, config.seed_start, config.num_clips, config.topic,
                        config.fps)  # fmt: skip


def noise_generators(seed: int, num_clips: int) -> list[torch.Generator]:
    """One generator per clip index: clip k's noise comes from seed + k (mod 2^64, torch's seed range),
    so the first clip's noise (and the first-clip figures) is the same whatever num_clips is."""
    return [torch.Generator().manual_seed((seed + k) % 2**64) for k in range(num_clips)]


def task_scores(predicted: np.ndarray, truth: np.ndarray, history: int) -> dict:
    """Model and copy-last-frame MSE (frames mapped to [0, 1]) of predictions [N, G, 3, H, W] against
    the true clips [N, M + G, 3, H, W]."""
    future = truth[:, history:]
    last = np.broadcast_to(truth[:, history - 1 : history], future.shape)
    model_mse = float((((predicted - future) / 2) ** 2).mean())
    baseline_mse = float((((last - future) / 2) ** 2).mean())
    return {"model_mse": model_mse, "baseline_mse": baseline_mse, "ratio": model_mse / baseline_mse}


@dataclass(frozen=True)
class Rollouts:
    """What one evaluation predicted, and the truth it is scored against."""

    predicted: np.ndarray  # [N, K*G, 3, H, W] in [-1, 1]
    truth: np.ndarray  # [N, M + K*G, 3, H, W] in [-1, 1]
    info: dict  # what the report says about the run: clips, layout, sampler, source
    round_trip: np.ndarray | None = None  # [N, K*G, 3, H, W]: the true future encoded and decoded


def progress(config: EvalConfig, total: int):
    return progress_bar(total, "eval", "scene", config.progress)


@torch.no_grad()
def rollout_checkpoint(config: EvalConfig) -> Rollouts:
    if config.checkpoint is None or config.codec is None:
        raise ConfigError("EvalConfig: give a bundle, or a checkpoint and a codec")
    loaded = load_checkpoint(config.checkpoint)
    model = loaded.model
    codec: LatentCodec = load_codec(config.codec)
    check_codec_fits(codec, loaded, config.codec)
    layout = Layout.from_pixels(model.config, config.history, config.clip, config.height, config.width)
    # A distilled student samples its own table with one branch; a teacher the configured sampler.
    sampler = loaded.sampler(SamplerConfig(steps=config.steps, guidance=config.guidance, shift=config.shift))
    predictor = CachedPredictor(model, sampler, window=config.history)
    gens = noise_generators(config.seed, config.num_clips)
    clips, source = config_clips(config, layout)
    M = config.history
    predicted, truths, round_trips = [], [], []
    bar = progress(config, len(clips))
    try:
        for i in range(0, len(clips), config.batch):
            frames = torch.stack([fit_frames(c, config.height, config.width) for c in clips[i : i + config.batch]])
            window = codec.encode_video(frames[:, :M])  # [B, M, C, h, w]
            # Each clip with its own generator (the first clip's noise stays the same whatever num_clips is),
            # conditioned on the newest M frames.
            latent_clips = roll_clips(window, gens, lambda w, gen: predictor.predict(w, 1, config.clip, gen), keep=M)
            decoded = [codec.decode_video(latents).clamp(-1, 1).numpy() for latents in latent_clips]  # [B, G, 3, H, W]
            predicted.append(np.concatenate(decoded, axis=1))  # [B, K*G, 3, H, W]
            truths.append(frames.numpy())
            round_trips.append(codec.decode_video(codec.encode_video(frames[:, M:])).clamp(-1, 1).numpy())
            bar.update(len(frames))
    finally:
        bar.close()
    info = {"clips": len(clips), "history": config.history, "clip": config.clip, "num_clips": config.num_clips,
            "steps": sampler.steps, "guidance": sampler.guidance, "shift": sampler.shift,
            "network_evaluations": network_evaluations(sampler), "source": source}  # fmt: skip
    if loaded.student is not None:
        info["timesteps"] = list(sampler.timesteps)
        info["distilled"] = loaded.student.to_dict()
    return Rollouts(np.concatenate(predicted), np.concatenate(truths), info, np.concatenate(round_trips))


def network_evaluations(sampler: SamplerConfig) -> int:
    """Denoising-network calls per clip: a step per branch (two with guidance, one for a student)."""
    return sampler.steps * (2 if sampler.guided else 1)


def _images(x: np.ndarray) -> np.ndarray:
    """[N, F, 3, H, W] in [-1, 1] -> [N, F, H, W, 3] in 0..1."""
    return (np.moveaxis(x, 2, -1).astype(np.float32) + 1) / 2


def scored_frames(rollouts: Rollouts, scenes: list[SceneObjects] | None) -> dict[str, np.ndarray]:
    """The frames that are scored, [N, F, H, W, 3] in 0..1: "observed" (F = M), "truth", "model",
    the baselines and the codec round trip where the rollouts have it (F = K*G). Constant velocity
    needs the scenes' colours (synthetic scenes only)."""
    M = rollouts.info["history"]
    truth = _images(rollouts.truth)
    frames = {"observed": truth[:, :M], "truth": truth[:, M:], "model": _images(rollouts.predicted)}
    F = frames["model"].shape[1]
    frames["copy_last"] = np.stack([objects.copy_last(o, F) for o in frames["observed"]])
    if scenes is not None:
        frames["constant_velocity"] = np.stack([objects.constant_velocity(o, objects.Palette.of(s), F)
                                                for o, s in zip(frames["observed"], scenes, strict=True)])  # fmt: skip
    if rollouts.round_trip is not None:
        frames[ROUND_TRIP] = _images(rollouts.round_trip)
    return frames


def _by_horizon(score: Callable, predicted: np.ndarray, truth: np.ndarray) -> list[float]:
    """A per-frame score averaged over the clips: [N, F, H, W, 3] twice -> F values."""
    return np.mean([score(p, t) for p, t in zip(predicted, truth, strict=True)], axis=0).tolist()


def horizon_scores(frames: dict[str, np.ndarray], scenes: list[SceneObjects] | None, history: int) -> dict:
    """PSNR and SSIM by horizon for the model, each baseline and the codec round trip; with scenes, the
    object scores too."""
    truth = frames["truth"]
    figures = {}
    for name in ("model", *BASELINES, ROUND_TRIP):
        if name not in frames:
            continue
        fig = {"psnr_by_horizon": _by_horizon(objects.psnr, frames[name], truth),
               "ssim_by_horizon": _by_horizon(objects.ssim, frames[name], truth)}  # fmt: skip
        if scenes is not None:
            clips = zip(frames[name], truth, scenes, strict=True)
            fig["objects"] = objects.summarise_objects([objects.score_objects(p, t, s, history) for p, t, s in clips])
        figures[name] = fig
    model = figures.pop("model")
    round_trip = figures.pop(ROUND_TRIP, None)
    result = {
        "horizons": list(range(1, truth.shape[1] + 1)),
        "psnr_by_horizon": model["psnr_by_horizon"],
        "ssim_by_horizon": model["ssim_by_horizon"],
        "objects": model.get("objects"),
        "baselines": {name: {**fig.pop("objects", {}), **fig} for name, fig in figures.items()},
    }
    if round_trip is not None:
        result[ROUND_TRIP] = {**round_trip.pop("objects", {}), **round_trip}
    if scenes is None:
        result["scoresskipped"] = "object scores need synthetic scenes (their ground truth); not for --videos"
    else:
        result["objects"]["criteria"] = {
            "scored_fraction": objects.SCORED_FRACTION, "min_scored_px": objects.MIN_SCORED_PX,
            "present_fraction": objects.PRESENT_FRACTION, "search_radii": objects.SEARCH_RADII,
            "blend_tolerance": objects.BLEND_TOLERANCE, "min_tolerance": objects.MIN_TOLERANCE,
        }  # fmt: skip
    return result


def _uint8(frames: np.ndarray) -> np.ndarray:
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def sheet_image(frames: dict[str, np.ndarray], names: list[str], clip: int, count: int,
                predictions: list[tuple[str, np.ndarray]] | None = None) -> np.ndarray:  # fmt: skip
    """A contact sheet of the first `count` scenes: observed frames, the true future, then one row per
    prediction (label, frames [N, F, H, W, 3]; default: the model's, then each baseline), a wider gap
    between predicted clips."""
    if predictions is None:
        predictions = [("predicted", frames["model"])]
        predictions += [(_LABELS[b], frames[b]) for b in BASELINES if b in frames]
    M, F = frames["observed"].shape[1], frames["truth"].shape[1]
    observed_captions = [f"t-{M - 1 - j}" if j < M - 1 else "t" for j in range(M)]
    future_captions = [f"+{j + 1}" for j in range(F)]
    blocks = []
    for n in range(count):
        rows = [SheetRow("observed", _uint8(frames["observed"][n]), observed_captions),
                SheetRow("true future", _uint8(frames["truth"][n]), future_captions)]  # fmt: skip
        rows += [SheetRow(label, _uint8(predicted[n]), future_captions) for label, predicted in predictions]
        blocks.append(contact_sheet(rows, title=names[n], group=clip))
    return stack_sheets(blocks)


def clip_names(config: EvalConfig, count: int) -> list[str]:
    if config.videos is None:
        return [f"synthetic scene, seed {config.seed_start + i}" for i in range(count)]
    return [p.name for p in list_recordings(config.videos)[:count]]


def write_plot(result: dict, path: str | Path) -> Path:
    """Figures by horizon, model against the baselines: presence and centroid error (synthetic scenes),
    PSNR and SSIM."""
    plt = pyplot("bench")
    panels = [("psnr_by_horizon", "PSNR (higher is better)", "PSNR (dB)"),
              ("ssim_by_horizon", "SSIM (higher is better)", "SSIM")]  # fmt: skip
    if result.get("objects") is not None:
        panels = [("presence_by_horizon", "balls present (higher is better)", "fraction of scored balls"),
                  ("centroid_error_by_horizon", "centroid error of present balls", "error (px)"),
                  ("stray_by_horizon", "stray pixels: smears, ghosts, tints (lower is better)",
                   "stray px per true ball px"), *panels]  # fmt: skip
    series = {"model": {**(result.get("objects") or {}), **result}, **_references(result)}
    styles = {"model": ("C0", "o", "-"), "copy_last": ("C1", "s", "--"), "constant_velocity": ("C2", "^", ":"),
              ROUND_TRIP: ("0.45", "D", "-.")}  # fmt: skip
    horizons = result["horizons"]
    misses = (result.get("objects") or {}).get("misses")
    rows = math.ceil(len(panels) / 2) + (misses is not None)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.8 * rows + 0.4), squeeze=False)
    if misses is not None:
        plot_misses(axes[-1], misses, horizons)
    if len(panels) % 2:
        axes.flat[len(panels)].axis("off")
    for ax, (key, title, ylabel) in zip(axes.flat[: len(panels)], panels, strict=True):
        for name, figures in series.items():
            values = [math.nan if v is None else v for v in figures.get(key) or []]
            if values:
                colour, marker, line = styles[name]
                ax.plot(horizons, values, color=colour, marker=marker, linestyle=line, label=_LABELS[name])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("horizon (frames after the last observed)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(horizons, [f"+{h}" for h in horizons])
        for k, boundary in enumerate(range(result["clip"], len(horizons), result["clip"])):
            # Where a new clip starts: from here on the model conditions on its own predictions.
            ax.axvline(boundary + 0.5, color="0.75", linewidth=1, zorder=0, label=None if k else "next clip")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=9)
    if result.get("objects") is not None:
        axes.flat[0].set_ylim(0, 1.05)
    fig.suptitle(f"vgpt-eval: {result['clips']} scenes, {result['history']} observed frames -> "
                 f"{result['num_clips']} clips of {result['clip']} ({result['source']})", fontsize=10)  # fmt: skip
    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


# Why the model misses balls (`vgpt.misses`): the report's figures, a table and two plot panels.

_CAUSE_LABELS = {"codec": "codec loss", "place": "wrong place", "colour": "colour drift", "faded": "faded / blurred",
                 "vanished": "vanished"}  # fmt: skip


def miss_diagnosis(frames: dict[str, np.ndarray], scenes: list[SceneObjects], history: int) -> dict:
    """Each missed ball of the model's rollouts put down to one cause, by horizon; the codec cause
    where the frames have the codec round trip."""
    round_trips = frames.get(ROUND_TRIP, [None] * len(scenes))
    clips = zip(frames["model"], frames["truth"], scenes, round_trips, strict=True)
    return summarise_misses([miss_causes(p, t, s, history, r) for p, t, s, r in clips])


def miss_table(result: dict) -> str:
    """The miss causes by horizon as a short text table: each cause's share of the scored balls (with
    presence they add up to 1) and the cause of most misses."""
    scores, misses = result["objects"], result["objects"]["misses"]
    causes = misses["causes"]
    cell = 9
    lines = ["missed balls by cause, as shares of the scored balls (present + causes = 1):",
             "horizon " + "".join(n.rjust(cell) for n in ("present", *causes)) + "  most misses"]  # fmt: skip

    def row(name: str, shares: list, dominant: str | None) -> str:
        return f"{name:<7} " + "".join(_fmt(v, ".2f").rjust(cell) for v in shares) + f"  {dominant or '-'}"

    for j, h in enumerate(result["horizons"]):
        shares = [scores["presence_by_horizon"][j], *(misses["by_horizon"][c][j] for c in causes)]
        lines.append(row(f"+{h}", shares, misses["dominant_by_horizon"][j]))
    lines.append(row("all", [scores["presence"], *(misses["overall"][c] for c in causes)], misses["dominant"]))
    return "\n".join(lines)


def plot_misses(axes, misses: dict, horizons: list[int]) -> None:
    """Two panels: each cause's share of the scored balls, and of the missed ones, by horizon (stacked)."""
    causes = misses["causes"]
    shares = np.array([[math.nan if v is None else v for v in misses["by_horizon"][c]] for c in causes])  # [causes, F]
    missed = np.nansum(shares, axis=0)  # [F]
    of_misses = np.divide(shares, missed, out=np.zeros_like(shares), where=missed > 0)
    panels = [(shares, "missed balls by cause", "fraction of scored balls"),
              (of_misses, "what the misses are", "fraction of missed balls")]  # fmt: skip
    for ax, (values, title, ylabel) in zip(axes, panels, strict=True):
        bottom = np.zeros(len(horizons))
        for k, cause in enumerate(causes):
            ax.bar(horizons, np.nan_to_num(values[k]), bottom=bottom, color=f"C{k + 3}", label=_CAUSE_LABELS[cause])
            bottom += np.nan_to_num(values[k])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("horizon (frames after the last observed)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(horizons, [f"+{h}" for h in horizons])
        ax.set_ylim(0, 1.3)  # room above 1 for the legend
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8, loc="upper left", ncols=3)


def _references(result: dict) -> dict[str, dict]:
    """The baselines' figures, then the codec round trip's where the report has it."""
    round_trip = {ROUND_TRIP: result[ROUND_TRIP]} if ROUND_TRIP in result else {}
    return {**result["baselines"], **round_trip}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def horizon_table(result: dict) -> str:
    """The by-horizon figures as a short text table (model, copy-last, constant-velocity, codec round trip)."""
    references = _references(result)
    names = ["model", *references]
    series = {"model": result, **references}
    object_series = {"model": result.get("objects"), **references}
    columns: list[tuple[str, Callable[[str, int], str]]] = []
    if result.get("objects") is not None:
        columns += [
            ("presence", lambda n, j: _fmt(object_series[n]["presence_by_horizon"][j], ".2f")),
            ("centroid px", lambda n, j: _fmt(object_series[n]["centroid_error_by_horizon"][j], ".1f")),
            ("stray px/ball px", lambda n, j: _fmt(object_series[n]["stray_by_horizon"][j], ".2f")),
        ]
    columns += [("PSNR dB", lambda n, j: _fmt(series[n]["psnr_by_horizon"][j], ".1f")),
                ("SSIM", lambda n, j: _fmt(series[n]["ssim_by_horizon"][j], ".3f"))]  # fmt: skip
    short = {"model": "model", "copy_last": "copy", "constant_velocity": "c.vel", ROUND_TRIP: "codec"}
    cell = 6
    group = len(names) * (cell + 1) - 1
    head = "horizon " + " | ".join(title.center(group) for title, _ in columns)
    sub = "        " + " | ".join(" ".join(short[n].rjust(cell) for n in names) for _ in columns)
    lines = [head, sub]
    for j, h in enumerate(result["horizons"]):
        cells = " | ".join(" ".join(fn(n, j).rjust(cell) for n in names) for _, fn in columns)
        lines.append(f"+{h:<6} " + cells)
    if result.get("objects") is not None:
        overall = " ".join(_fmt(object_series[n]["presence"], ".2f").rjust(cell) for n in names)
        centroid = " ".join(_fmt(object_series[n]["centroid_error_px"], ".1f").rjust(cell) for n in names)
        stray = " ".join(_fmt(object_series[n]["stray"], ".2f").rjust(cell) for n in names)
        lines.append(f"{'all':<7} {overall} | {centroid} | {stray}")
    else:
        lines.append(f"object scores skipped: {result['scoresskipped']}")
    return "\n".join(lines)


def report(config: EvalConfig, rollouts: Rollouts) -> dict:
    """Score rollouts, and write the plot and contact sheet asked for; returns the report."""
    info = rollouts.info
    M, G = info["history"], info["clip"]
    scenes = None
    if config.videos is None:
        H, W = rollouts.truth.shape[-2:]
        scene = SceneConfig(height=H, width=W, frames=rollouts.truth.shape[1])
        scenes = [scene_objects(config.seed_start + i, scene) for i in range(info["clips"])]
    frames = scored_frames(rollouts, scenes)
    result = {
        **task_scores(rollouts.predicted[:, :G], rollouts.truth[:, : M + G], M),
        **info,
        **horizon_scores(frames, scenes, M),
    }
    if scenes is not None:
        result["objects"]["misses"] = miss_diagnosis(frames, scenes, M)
    if config.plot:  # the command says what it wrote
        write_plot(result, config.plot)
    if config.sheet:
        names = clip_names(config, config.sheet_clips)
        write_png(config.sheet, sheet_image(frames, names, G, config.sheet_clips))
    return result
