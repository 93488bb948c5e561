"""The accuracy report of a quantized bundle: its predictions against the fp32 model's on held-out
clips, from the same noise.

Per clip: the relative error of the denoised latents, ||z_q - z_fp32|| / ||z_fp32||, and the PSNR of
the decoded predicted frames against the fp32 prediction (frames in [0, 1]); over all clips, the task
figure of `vgpt-eval` (model MSE against the copy-last-frame baseline) for both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vgpt.atomic import atomic_file
from vgpt.metrics import psnr, relative_error

REPORT = "accuracy.json"


# The accuracy report's default size, per calibration clip asked for (64 at the default 32): a quick
# --calib-count 4 trial once spent most of its 18.5 minutes on a fixed 64-clip report.
REPORT_CLIPS_PER_CALIBRATION_CLIP = 2


def accuracy_report(candidate, reference, clips: list[np.ndarray], seed: int = 0, source: str = "",
                    progress: bool = True) -> dict:  # fmt: skip
    """`candidate` (the quantized bundle's backend) against `reference` (fp32) on `clips`."""
    from vgpt.evaluation import task_scores
    from vgpt.progress import progress_bar
    from vgpt.runtime.evaluate import predict_clips

    M = candidate.layout.history_frames
    with progress_bar(2 * len(clips), "accuracy report", "clip", progress) as bar:
        lat_q, pred_q, truth = predict_clips(candidate, clips, seed, on_scene=lambda: bar.update(1))
        lat_r, pred_r, _ = predict_clips(reference, clips, seed, on_scene=lambda: bar.update(1))
    rel = [relative_error(q, r) for q, r in zip(lat_q, lat_r, strict=True)]
    psnrs = [float(psnr(q, r, peak_to_peak=2, frame_axis=None)) for q, r in zip(pred_q, pred_r, strict=True)]
    return {
        "clips": len(clips),
        "source": source,
        "seed": seed,
        "latent_rel_error": {"mean": float(np.mean(rel)), "max": float(np.max(rel)), "per_clip": rel},
        "psnr_vs_fp32_db": {"mean": float(np.mean(psnrs)), "min": float(np.min(psnrs)), "per_clip": psnrs},
        "eval": {"quantized": task_scores(pred_q, truth, M), "fp32": task_scores(pred_r, truth, M)},
    }


def write_report(bundle_dir: str | Path, report: dict) -> Path:
    path = Path(bundle_dir) / REPORT
    with atomic_file(path, "w") as f:
        f.write(json.dumps(report, indent=2))
    return path


def summary(report: dict, precision: str) -> str:
    q, f = report["eval"]["quantized"], report["eval"]["fp32"]
    return (f"{precision} vs fp32 on {report['clips']} held-out clips ({report['source']}): latent relative error "
            f"mean {report['latent_rel_error']['mean']:.4f} (max {report['latent_rel_error']['max']:.4f}); PSNR vs "
            f"fp32 prediction mean {report['psnr_vs_fp32_db']['mean']:.2f} dB (min "
            f"{report['psnr_vs_fp32_db']['min']:.2f}); eval ratio {q['ratio']:.3f} ({precision}) vs {f['ratio']:.3f} "
            f"(fp32)")  # fmt: skip
