"""vgpt-bench --live: what a live stream costs per observed frame and per prediction, by KV cache.

A live stream that may predict after any frame keeps the KV cache of its newest M frames current. Per
observed frame that costs, under ONNX Runtime with the bundles' own graphs:

- Video-GPT exact: prefill of the whole window (M frames), since every kept frame's keys depend on the
  frame that was dropped;
- Video-GPT rolling: one append (the new frame attending the M - 1 kept ones; approximate, it drifts);
- GPDiT rolling: one frame through the network alone (frame.onnx), written into the ring: exact.

Per prediction: the cache brought up to date (exact: prefill; Video-GPT rolling: nothing more; GPDiT: the
ring read, ring.onnx) and the S denoising steps. GPDiT exact (prefill) is timed too, for the same model.
Each is also counted in tokens run through the network per observed frame. The weights do not change the
times: the models are random (`preset:NAME`) unless a checkpoint is named.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vgpt.codecs import LightCodec
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.layout import Layout
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.sampler import SamplerConfig

log = logging.getLogger(__name__)

# The layout the bundled model runs at (M, G, latent h x w: 64 x 64 px), and the released inference's
# proportions (M = 56 history frames, G = 24 per clip).
BUNDLED_LAYOUT = (4, 4, (8, 8))
RELEASED_LAYOUT = (56, 24, (8, 8))


def live_costs(videogpt, gpdit, layouts, sampler: SamplerConfig, config, root: Path) -> dict[str, Any]:
    """For each (M, G, (h, w)) of `layouts`: both models exported at fp32 (unverified: only speed is measured)
    and timed per observed frame and per prediction. `config`: the BenchConfig (repeats, warmup, threads,
    seed). `videogpt` must be a Video-GPT model (approximate append), `gpdit` one with the lightweight mask."""
    rows = []
    for M, G, (h, w) in layouts:
        log.info("live stream: history %d, clip %d, %dx%d latents", M, G, h, w)
        row: dict[str, Any] = {"history": M, "clip": G, "latent": [h, w], "steps": sampler.steps}
        for family, model in (("videogpt", videogpt), ("gpdit", gpdit)):
            layout = Layout.for_model(model.config, M, G, h, w)
            path = root / f"{family}-m{M}-g{G}-{h}x{w}"
            export_bundle(model, LightCodec().eval(), path,
                          ExportConfig(layouts=(layout,), sampler=sampler, verify=False))  # fmt: skip
            backend = OrtBackend(load_bundle(path), threads=config.threads)
            row[f"{family}_exact"], row[f"{family}_rolling"] = _family_costs(backend, family, config)
            backend.close()
        per_frame = row["videogpt_exact"]["per_frame"].median / row["gpdit_rolling"]["per_frame"].median
        row["exact_per_frame_ratio"] = per_frame  # Video-GPT's exact re-prefill over GPDiT's exact rolling
        row["ratio_at_least_half_m"] = per_frame >= M / 2
        rows.append(row)
    return {"layouts": rows, "models": {"videogpt": videogpt.config.name, "gpdit": gpdit.config.name}}


def _family_costs(backend: OrtBackend, family: str, config) -> tuple[dict[str, Any], dict[str, Any]]:
    """(exact, rolling) of one bundle: each cache's time per observed frame and per prediction."""
    from vgpt.cli.bench.timing import measure

    layout = backend.layout
    M, G, h, w = layout.history_frames, layout.clip_frames, layout.latent_height, layout.latent_width
    rng = np.random.default_rng(config.seed)
    C = backend.latent.shape[1]
    history = rng.standard_normal((1, M, C, h, w), dtype=np.float32)
    frame = rng.standard_normal((1, 1, C, h, w), dtype=np.float32)
    z = rng.standard_normal((1, G, C, h, w), dtype=np.float32)

    def timed(fn, name):
        return measure(fn, config.repeats, config.warmup, f"live {family} {name} (M={M})")

    exact = {"per_frame": timed(lambda: backend.prefill(history), "prefill"),
             "per_prediction": timed(lambda: (backend.prefill(history), backend.denoise(z)), "exact"),
             "tokens_per_frame": M * layout.block}  # fmt: skip
    if backend.exact_rolling:
        for i in range(M):
            backend.push(history[:, i : i + 1])
        return exact, {"per_frame": timed(lambda: backend.push(frame), "push"),
                       "per_prediction": timed(lambda: (backend.read_window(), backend.denoise(z)), "ring"),
                       "tokens_per_frame": layout.block, "exact": True}  # fmt: skip
    backend.prefill(history)
    return exact, {"per_frame": timed(lambda: backend.append(frame), "append"),
                   "per_prediction": timed(lambda: backend.denoise(z), "rolling"),
                   "tokens_per_frame": layout.block, "exact": False}  # fmt: skip


LABELS = (("videogpt_exact", "Video-GPT exact (re-prefill of M frames)"),
          ("videogpt_rolling", "Video-GPT rolling (approximate: one append)"),
          ("gpdit_exact", "GPDiT exact (re-prefill of M frames)"),
          ("gpdit_rolling", "GPDiT rolling (exact: one frame alone)"))  # fmt: skip


def live_table(live: dict[str, Any]) -> list[str]:
    """Markdown rows: per layout, each cache's time per observed frame and per prediction."""
    rows = ["| live stream, M / G / latents: cache | per observed frame | tokens computed per frame | "
            "per prediction |", "|---|---|---|---|"]  # fmt: skip
    for r in live["layouts"]:
        where = f"{r['history']} / {r['clip']} / {r['latent'][0]}x{r['latent'][1]}"
        for key, label in LABELS:
            c = r[key]
            rows.append(f"| {where}: {label} | {c['per_frame'].median * 1e3:.2f} ms | {c['tokens_per_frame']} | "
                        f"{c['per_prediction'].median * 1e3:.0f} ms ({r['steps']} steps) |")  # fmt: skip
        verdict = "at least" if r["ratio_at_least_half_m"] else "BELOW"
        rows.append(f"| {where}: Video-GPT exact over GPDiT rolling, per observed frame | "
                    f"{r['exact_per_frame_ratio']:.1f}x ({verdict} M/2 = {r['history'] / 2:g}) | | |")  # fmt: skip
    return rows
