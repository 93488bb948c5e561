"""A teacher and its distilled students side by side on one set of scenes and noise: `vgpt-eval --student`.

Rows: the teacher at its own sampler (50 steps x 2 branches for the bundled default), the teacher cut to
K Euler steps with its guidance (K x 2: the floor a K-step student must beat), and each student (K x 1).
Every row rolls out the same scenes from the same noise generators (`vgpt.evaluation`), and is scored by
horizon: presence, centroid error and colour error of the balls (synthetic scenes), PSNR and SSIM.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from vgpt.atomic import atomic_file
from vgpt.checkpoint import load_checkpoint
from vgpt.config import ConfigError
from vgpt.evaluation import EvalConfig, clip_names, horizon_scores, rollout_checkpoint, scored_frames, sheet_image
from vgpt.sheet import write_png
from vgpt.synthetic import SceneConfig, scene_objects

# (key in the row's figures, title, axis label, table format)
FIGURES = (
    ("presence_by_horizon", "balls present (higher is better)", "fraction of scored balls", ".2f"),
    ("centroid_error_by_horizon", "centroid error of present balls", "error (px)", ".1f"),
    ("colour_error_by_horizon", "colour error of present balls", "error", ".3f"),
    ("stray_by_horizon", "stray pixels per true ball pixel (lower is better)", "stray px per ball px", ".2f"),
    ("psnr_by_horizon", "PSNR (higher is better)", "PSNR (dB)", ".1f"),
)


def row_configs(config: EvalConfig, students: list[str]) -> list[tuple[str, EvalConfig]]:
    """(label, evaluation) per row: the teacher, the teacher at each student's K, then the students."""
    teacher = load_checkpoint(config.checkpoint)
    if teacher.student is not None:
        raise ConfigError(f"{config.checkpoint} is a distilled student: give its teacher as --checkpoint")
    rows = [(f"teacher {config.steps}x2" if config.guidance != 1.0 else f"teacher {config.steps}x1", config)]
    records = []
    for path in students:
        record = load_checkpoint(path).student
        if record is None:
            raise ConfigError(f"--student {path} is not a distilled student (no student record in its manifest)")
        if record.distilled_from != teacher.weights_sha256:
            raise ConfigError(f"--student {path} was distilled from weights {record.distilled_from[:12]}..., not "
                             f"{config.checkpoint} ({teacher.weights_sha256[:12]}...)")  # fmt: skip
        records.append(record)
    for steps in sorted({r.steps for r in records} - {config.steps}):
        rows.append((f"teacher {steps}x2", dataclasses.replace(config, steps=steps)))
    labels = [f"{r.stage.replace('_', '-')} student {r.steps}x1" for r in records]
    for k, (label, path) in enumerate(zip(labels, students, strict=True)):
        unique = label if labels.count(label) == 1 else f"{label} #{k + 1}"
        rows.append((unique, dataclasses.replace(config, checkpoint=path)))
    return rows


def compare(config: EvalConfig, students: list[str]) -> dict:
    """Every row rolled out and scored; writes the plot and contact sheet the config asks for."""
    rows = row_configs(config, students)
    scenes = None
    figures, frames_by_row = {}, {}
    info = None
    for label, row in rows:
        rollouts = rollout_checkpoint(dataclasses.replace(row, plot=None, sheet=None))
        if scenes is None and config.videos is None:
            H, W = rollouts.truth.shape[-2:]
            scene = SceneConfig(height=H, width=W, frames=rollouts.truth.shape[1])
            scenes = [scene_objects(config.seed_start + i, scene) for i in range(rollouts.info["clips"])]
        frames = scored_frames(rollouts, scenes)
        scores = horizon_scores(frames, scenes, rollouts.info["history"])
        objects = scores.pop("objects") or {}
        objects.pop("criteria", None)
        run = {k: rollouts.info[k] for k in ("steps", "guidance", "shift", "network_evaluations")}
        run.update({k: rollouts.info[k] for k in ("timesteps", "distilled") if k in rollouts.info})
        pixels = {k: scores[k] for k in ("psnr_by_horizon", "ssim_by_horizon")}
        figures[label] = {"checkpoint": row.checkpoint, **run, **objects, **pixels}
        frames_by_row[label] = frames
        if info is None:
            info = {k: v for k, v in rollouts.info.items() if k not in run and k not in ("timesteps", "distilled")}
            info["horizons"] = scores["horizons"]
            info["baselines"] = scores["baselines"]
    result = {**info, "rows": figures}
    if config.plot:
        write_comparison_plot(result, config.plot)
    if config.sheet:
        names = clip_names(config, config.sheet_clips)
        write_png(config.sheet, comparison_sheet(frames_by_row, names, info["clip"], config.sheet_clips))
    return result


def comparison_table(result: dict) -> str:
    """One block per figure: a line per row, its network evaluations per clip, then the value at each horizon."""
    horizons = result["horizons"]
    width = max(len(label) for label in result["rows"])
    lines = []
    for key, title, _, spec in FIGURES:
        if not any(row.get(key) for row in result["rows"].values()):
            continue
        lines.append(title)
        lines.append("".ljust(width) + "   NFE " + " ".join(f"+{h}".rjust(6) for h in horizons))
        for label, row in result["rows"].items():
            cells = " ".join(("-" if v is None else format(v, spec)).rjust(6) for v in row[key])
            lines.append(f"{label.ljust(width)} {row['network_evaluations']:5d} {cells}")
        lines.append("")
    return "\n".join(lines).rstrip()


def write_comparison_plot(result: dict, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from err
    panels = [f for f in FIGURES if any(row.get(f[0]) for row in result["rows"].values())]
    horizons = result["horizons"]
    fig, axes = plt.subplots(math.ceil(len(panels) / 2), 2, figsize=(10, 3.8 * math.ceil(len(panels) / 2) + 0.4),
                             squeeze=False)  # fmt: skip
    for ax, (key, title, ylabel, _) in zip(axes.flat, panels, strict=False):
        for k, (label, row) in enumerate(result["rows"].items()):
            values = [math.nan if v is None else v for v in row[key]]
            ax.plot(horizons, values, color=f"C{k}", marker="os^Dv<>"[k % 7],
                    label=f"{label} ({row['network_evaluations']} NFE)")  # fmt: skip
        for boundary in range(result["clip"], len(horizons), result["clip"]):
            ax.axvline(boundary + 0.5, color="0.75", linewidth=1, zorder=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("horizon (frames after the last observed)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(horizons, [f"+{h}" for h in horizons])
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    title = (f"vgpt-eval, teacher and students: {result['clips']} scenes, {result['history']} observed frames -> "
             f"{result['num_clips']} clips of {result['clip']} ({result['source']})")  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def comparison_sheet(frames_by_row: dict[str, dict[str, np.ndarray]], names: list[str], clip: int,
                     count: int) -> np.ndarray:  # fmt: skip
    """Per scene: the observed frames, the true future, then every row's prediction."""
    first = next(iter(frames_by_row.values()))
    return sheet_image(first, names, clip, count, [(label, f["model"]) for label, f in frames_by_row.items()])
