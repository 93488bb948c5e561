"""vgpt-bench --students: a teacher and its few-step students timed per predicted clip in one run.

A clip is what the runtime does for each prediction: prefill the M history latents, run the denoising
loop (the teacher: S steps of two branches; a K-step student: K steps of one branch), decode the G
frames. Each is timed under ONNX Runtime (the bundle the runtime loads, exported here unverified: only
speed is measured) and PyTorch eager (the same graph modules), at the bundled layout and at the released
proportions, and `student_vs_teacher_clip` is the teacher's clip time over each student's.

A student's speed depends on its sampler, not on its weights: without a trained student (`--student`),
each K is a random-weight network of the teacher's shape with the K-step table a distillation of that
teacher would record (vgpt.student.student_indices), exported as a real student bundle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgpt.checkpoint import content_hash, load_checkpoint
from vgpt.codecs import LightCodec, load_codec
from vgpt.default_model import default_model
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.export.spec import layout_name
from vgpt.layout import Layout
from vgpt.model import VideoGPT
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.backends.torch_backend import TorchBackend
from vgpt.sampler import SamplerConfig, schedule
from vgpt.student import STUDENT_STEPS, StudentSampler, student_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contender:
    name: str  # "teacher" or "student K=4"
    model: VideoGPT
    sampler: SamplerConfig
    student: StudentSampler | None

    @property
    def network_evaluations(self) -> int:
        return self.sampler.steps * (2 if self.sampler.guided else 1)


def random_student(teacher: VideoGPT, sampler: SamplerConfig, steps: int, seed: int = 1) -> Contender:
    """A random-weight network of the teacher's shape with the record a K-step distillation of it writes."""
    table = schedule(sampler.steps, sampler.shift)[student_indices(sampler.steps, steps)].tolist()
    record = StudentSampler(tuple(table), sampler.guidance, sampler.shift, sampler.steps,
                            content_hash(teacher.state_dict()), "consistency")  # fmt: skip
    torch.manual_seed(seed)
    return Contender(f"student K={steps}", VideoGPT(teacher.config).eval(), record.sampler(), record)


def contenders(config, teacher: VideoGPT, sampler: SamplerConfig) -> list[Contender]:
    """The teacher, then a student per K: the checkpoint `config.student` (its own K) or random weights."""
    out = [Contender("teacher", teacher, sampler, None)]
    if config.student is not None:
        loaded = load_checkpoint(config.student)
        if loaded.student is None:
            raise ValueError(f"--student {config.student} is not a distilled student (no student record)")
        if loaded.model.config != teacher.config:
            raise ValueError(f"--student {config.student} is a {loaded.model.config.name} network, the teacher "
                             f"{teacher.config.name}: time a student of the bench's model (--model)")  # fmt: skip
        record = loaded.student
        out.append(Contender(f"student K={record.steps}", loaded.model, record.sampler(), record))
        return out
    return out + [random_student(teacher, sampler, k) for k in config.student_steps]


def bench_layouts(config, model: VideoGPT) -> dict[str, Layout]:
    """The bundled layout (the default model's, or Defaults' for another model) and the released proportions."""
    h, w = config.latent
    bundled = default_model().defaults.layout(model.config)
    return {"bundled": bundled, "released": Layout.for_model(model.config, config.history, config.clip, h, w)}


def _codec(config):
    """The bundled codec for the bundled model (its decoder is part of a clip), else a light codec."""
    if config.model is None:
        return load_codec(default_model().codec_dir)
    torch.manual_seed(0)
    return LightCodec().eval()


def _inputs(C: int, layout: Layout, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    M, G, h, w = layout.history_frames, layout.clip_frames, layout.latent_height, layout.latent_width
    return torch.randn(1, M, C, h, w, generator=gen).numpy(), torch.randn(1, G, C, h, w, generator=gen).numpy()


def clip_timing(backend, history: np.ndarray, z: np.ndarray, config, name: str):
    """Prefill + the whole denoising loop + decode of the G frames, as the runtime runs one prediction."""
    from vgpt.cli.bench.timing import measure

    def clip():
        backend.prefill(history)
        return backend.decode(backend.denoise(z)[0])

    return measure(clip, config.repeats, config.warmup, name)


def student_vs_teacher(config, teacher: VideoGPT, tmp: Path) -> dict[str, Any]:
    """Per-clip times of the teacher (the bench's network) and each student, by layout and backend, with
    their ratios to the teacher's."""
    if config.model is None:
        sampler = default_model().sampler()  # the bundled teacher's own: 50 steps, guidance 2, shift 3
    else:
        sampler = SamplerConfig(steps=config.steps, guidance=config.guidance)
    codec = _codec(config)
    layouts = bench_layouts(config, teacher)
    rows = contenders(config, teacher, sampler)
    C = teacher.config.latent_channels
    times: dict[str, dict[str, dict[str, Any]]] = {name: {"onnxruntime": {}, "torch": {}} for name in layouts}
    for row in rows:
        bundle_dir = tmp / row.name.replace(" ", "-").replace("=", "")
        backends = []
        if config.onnx:
            log.info("students: exporting the %s (%d steps x %d)", row.name, row.sampler.steps,
                     2 if row.sampler.guided else 1)  # fmt: skip
            export = ExportConfig(layouts=tuple(layouts.values()), sampler=row.sampler, verify=False,
                                  student=row.student)  # fmt: skip
            export_bundle(row.model, codec, bundle_dir, export)
            bundle = load_bundle(bundle_dir)
            backends += [("onnxruntime", lambda lay, b=bundle: OrtBackend(b, lay, threads=config.threads))]
        backends += [("torch", lambda lay, r=row: TorchBackend(r.model, codec, layouts[lay], r.sampler,
                                                               config.threads))]  # fmt: skip
        for which, layout in layouts.items():
            history, z = _inputs(C, layout, config.seed)
            for backend_name, make in backends:
                backend = make(layout_name(layout) if backend_name == "onnxruntime" else which)
                log.info("students: %s, %s layout, %s", row.name, which, backend_name)
                timing = clip_timing(backend, history, z, config, f"{row.name} {which} {backend_name}")
                times[which][backend_name][row.name] = {"per_clip": timing, "steps": row.sampler.steps,
                                                        "network_evaluations": row.network_evaluations}  # fmt: skip
                backend.close()
    ratios = {
        layout: {
            backend: {name: t["teacher"]["per_clip"].median / r["per_clip"].median
                      for name, r in t.items() if name != "teacher"}
            for backend, t in by_backend.items() if "teacher" in t
        }
        for layout, by_backend in times.items()
    }  # fmt: skip
    return {
        "teacher_sampler": {"steps": sampler.steps, "guidance": sampler.guidance, "shift": sampler.shift},
        "student_weights": config.student or "random weights of the teacher's shape (speed does not depend on them)",
        "layouts": {name: lay.to_dict() for name, lay in layouts.items()},
        "per_clip": times,
        "student_vs_teacher_clip": ratios,
    }


def student_table(report: dict[str, Any]) -> list[str]:
    """Markdown rows: each contender's clip time per layout and backend, and the ratio to the teacher."""
    rows = []
    for layout, by_backend in report["per_clip"].items():
        lay = report["layouts"][layout]
        size = f"M={lay['history_frames']}, G={lay['clip_frames']}, {lay['latent_height']}x{lay['latent_width']}"
        for backend, by_name in by_backend.items():
            for name, t in by_name.items():
                ratio = report["student_vs_teacher_clip"][layout][backend].get(name)
                extra = f", {ratio:.1f}x faster than the teacher" if ratio else ""
                rows.append(f"| per clip (prefill + steps + decode), {layout} layout ({size}), {backend}: {name} "
                            f"({t['network_evaluations']} NFE) | {t['per_clip'].median:.3f} s "
                            f"(spread {t['per_clip'].spread:.3f}){extra} |")  # fmt: skip
    return rows


def check_student_steps(steps: tuple[int, ...]) -> tuple[int, ...]:
    wrong = [k for k in steps if k not in STUDENT_STEPS]
    if wrong or not steps:
        raise ValueError(f"student steps {list(steps)}: choose from {list(STUDENT_STEPS)}")
    return steps
