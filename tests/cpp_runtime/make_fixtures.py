"""Parity fixtures for the C/C++ runtime's tests, written by the Python runtime.

    python3 -m tests.cpp_runtime.make_fixtures --out build/cpp_fixtures

Writes `fixtures.json` and raw little-endian `.bin` arrays (described by dtype and shape in the JSON):

- `bundled`: the bundled default's bundle (exported into the vgpt cache on first use), frames of another
  size than the layout's, explicit noise for two clips, and what `VideoPredictor` predicts from them;
- `tiny`: the same for a freshly exported `tiny`-preset bundle (random weights, 4 steps): the C++
  concurrency and error tests run on it because it is fast, and scripts/gpu_check.sh builds TensorRT
  engines of it, so it is exported at the opset the installed TensorRT parses (`fixture_opset`);
- `gpdit`: the same for a `gpdit-tiny`-preset bundle (GPDiT's lightweight mask: frame.onnx and ring.onnx)
  in the exact rolling mode, after the window has slid past several observed frames;
- `student`: the same for a `tiny` student bundle (random weights with a distilled student's record: 2 steps
  at its own table, one branch);
- `preprocess`: `fit_frames` of frames of several sizes (up- and downsampling, identity, odd sizes);
- `to_uint8`: `to_uint8` of values around every rounding boundary;
- `tamper`: altered copies of the tiny bundle that both runtimes must refuse, a signed copy and its key
  (tests/cpp_runtime/tamper.py; paths relative to the fixture folder).

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from tests.conftest import random_model
from tests.cpp_runtime.tamper import write_cases, write_engine_cases
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.engines.settings import export_opset, parse_tensorrt_version
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.export.manifest import load_bundle
from vgpt.frames import fit_frames, to_uint8
from vgpt.layout import Layout
from vgpt.runtime.backends.ort_backend import OrtBackend
from vgpt.runtime.loading import cached_export
from vgpt.runtime.predictor import VideoPredictor
from vgpt.sampler import SamplerConfig
from vgpt.synthetic import SceneConfig, render_video

NUM_CLIPS = 2  # two clips: the second runs on a history that holds the first (autoregression on a copy)
SEED = 1234


class Writer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def __call__(self, array: np.ndarray) -> dict:
        array = np.ascontiguousarray(array)
        name = f"a{self.count:03d}.bin"
        self.count += 1
        (self.folder / name).write_bytes(array.astype(array.dtype.newbyteorder("<")).tobytes())
        return {"file": name, "dtype": str(array.dtype), "shape": list(array.shape)}


def fixture_opset() -> int:
    """The export's default opset, or where TensorRT is installed the opset its parser takes (opset 23
    needs TensorRT >= 10.15). The C++ backend must link that same TensorRT: its plans are refused by any
    other version."""
    try:
        import tensorrt
    except ImportError:
        return ExportConfig.opset
    return export_opset(parse_tensorrt_version(tensorrt.__version__))


def tiny_bundle(out: Path, preset: str = "tiny") -> Path:
    model = random_model(get_preset(preset))
    torch.manual_seed(0)
    codec = LightCodec().eval()
    layout = Layout.for_model(model.config, 3, 2, 4, 4)
    config = ExportConfig(layouts=(layout,), sampler=SamplerConfig(steps=4, guidance=2.0, shift=1.5),
                          opset=fixture_opset(), verify=False)  # fmt: skip
    export_bundle(model, codec, out, config)
    return out


def tiny_student_bundle(out: Path) -> Path:
    """A student bundle: its denoising graph runs one branch at the K-step table it records."""
    from vgpt.checkpoint import content_hash
    from vgpt.sampler import schedule
    from vgpt.student import StudentSampler, student_indices

    model = random_model(get_preset("tiny"))
    torch.manual_seed(0)
    codec = LightCodec().eval()
    layout = Layout.for_model(model.config, 3, 2, 4, 4)
    table = schedule(5, 1.5)[student_indices(5, 2)].tolist()
    record = StudentSampler(tuple(table), 2.0, 1.5, 5, content_hash(model.state_dict()), "self_forcing")
    config = ExportConfig(layouts=(layout,), sampler=record.sampler(), opset=fixture_opset(), verify=False,
                          student=record)  # fmt: skip
    export_bundle(model, codec, out, config)
    return out


def prediction_case(bundle: Path, frames: np.ndarray, write: Writer, recorded: Path | None = None,
                    mode: str = "exact") -> dict:  # fmt: skip
    """What the Python runtime predicts from `frames` with noise drawn by a seeded torch generator; the
    same noise is drawn again clip by clip (the predictor's own calls) and stored for the C++ side."""
    predictor = VideoPredictor(OrtBackend(load_bundle(bundle)), mode=mode)
    layout = predictor.layout
    shape = (1, layout.clip_frames, predictor.backend.latent.shape[1], layout.latent_height, layout.latent_width)
    replay = torch.Generator().manual_seed(SEED)
    noise = np.stack([torch.randn(shape, generator=replay).numpy() for _ in range(NUM_CLIPS)])  # [K, 1, G, C, h, w]
    predictor.observe(frames)
    prediction = predictor.predict(NUM_CLIPS, generator=torch.Generator().manual_seed(SEED), return_latents=True)
    return {
        "bundle": str((recorded or bundle).resolve()),
        "num_clips": NUM_CLIPS,
        "mode": mode,
        "observe": write(frames),
        "noise": write(noise),
        "latents": write(prediction.latents),
        "frames": write(prediction.frames),
    }


def preprocess_cases(write: Writer) -> list[dict]:
    rng = np.random.default_rng(0)
    cases = []
    # (source h, w) -> (target H, W): cover-resize up, down, by large factors, odd sizes, identity.
    for (h, w), (H, W) in [((80, 96), (64, 64)), ((48, 40), (64, 64)), ((64, 64), (64, 64)),
                           ((37, 101), (32, 48)), ((300, 200), (64, 96)), ((17, 16), (32, 32))]:  # fmt: skip
        frame = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        expected = fit_frames(frame, H, W).numpy()[0]  # [3, H, W]
        cases.append({"input": write(frame[0]), "height": H, "width": W, "output": write(expected)})
    return cases


def to_uint8_case(write: Writer) -> dict:
    boundaries = (np.arange(256, dtype=np.float64) + 0.5) / 127.5 - 1.0  # where round() changes its result
    values = np.concatenate([boundaries, np.nextafter(boundaries, 2), np.nextafter(boundaries, -2),
                             np.linspace(-1.3, 1.3, 997), [-np.inf, np.inf]]).astype(np.float32)  # fmt: skip
    x = torch.from_numpy(values).reshape(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()  # [1, 3, 1, N]
    return {"input": write(values), "output": write(to_uint8(x)[0, 0, :, 0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="fixture folder (replaced)")
    args = parser.parse_args()
    out: Path = args.out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write = Writer(tmp)
    tiny = tiny_bundle(tmp / "tiny-bundle")
    gpdit = tiny_bundle(tmp / "gpdit-bundle", "gpdit-tiny")
    student = tiny_student_bundle(tmp / "student-bundle")
    fixtures = {
        "bundled": prediction_case(cached_export(None, None, None), render_video(3, SceneConfig(80, 96, 6)), write),
        # the tiny bundle is recorded at the place it has once the folder is renamed
        "tiny": prediction_case(tiny, render_video(5, SceneConfig(40, 30, 4)), write, out / tiny.name),
        # 10 frames for a window of 3: the C++ stream pushes each observed frame into its ring at once, so its
        # ring has slid by 7 when the prediction reads it; the Python one pushes the newest 3 at predict time
        "gpdit": prediction_case(gpdit, render_video(6, SceneConfig(40, 30, 10)), write, out / gpdit.name, "rolling"),
        "student": prediction_case(student, render_video(6, SceneConfig(40, 30, 4)), write, out / student.name),
        "preprocess": preprocess_cases(write),
        "to_uint8": to_uint8_case(write),
        "tamper": {**write_cases(tiny, tmp / "tamper"), "folder": "tamper"},
        "engine_tamper": write_engine_cases(tiny, tmp / "engine-tamper"),  # paths relative to the fixture folder
    }
    (tmp / "fixtures.json").write_text(json.dumps(fixtures, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


if __name__ == "__main__":
    main()
