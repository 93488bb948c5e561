import re

import numpy as np
import pytest
from click.testing import CliRunner

from vgpt.runtime import run as run_module
from vgpt.runtime.cli import run_main
from vgpt.runtime.sources import FrameSource, SourceDisconnected
from vgpt.synthetic import SceneConfig, render_video
from vgpt.video import probe, read_frames, write_video


def _run(*args):
    return CliRunner().invoke(run_main, [*args, "--no-progress"])


def test_vgpt_run_writes_a_side_by_side_video(model_folder, clip_video, tmp_path):
    out = tmp_path / "out.mp4"
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(out), "--clips", "3",
                  "--frames-dir", str(tmp_path / "png"), "--latents", str(tmp_path / "lat.npz"))  # fmt: skip
    assert result.exit_code == 0, result.output
    info = probe(out)
    # History 3 + 3 clips x 2 frames; two 32 px panels enlarged 8x with a 4 px divider.
    assert (info.frames, info.height, info.width) == (3 + 6, 256, 2 * 256 + 4)
    assert len(list((tmp_path / "png").glob("*.png"))) == 6
    assert np.load(tmp_path / "lat.npz")["prediction"].shape == (6, 4, 4, 4)
    assert "predicted 6 frames in 3 clips" in result.output and "ms per denoising step" in result.output
    assert not list(tmp_path.glob(".*")), "no temporary file is left"


def test_input_errors(model_folder, clip_video, tmp_path):
    engine = ["--engine", str(model_folder), "--output", str(tmp_path / "o.mp4")]
    result = _run("--input", str(tmp_path / "missing.mp4"), *engine)
    assert result.exit_code == 1 and "does not exist" in result.output
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x01garbage" * 200)
    result = _run("--input", str(tmp_path / "corrupt.mp4"), *engine)
    assert result.exit_code == 1 and "corrupt.mp4" in result.output
    short = write_video(tmp_path / "short.mp4", render_video(1, SceneConfig(height=32, width=32, frames=2)))
    result = _run("--input", str(short), *engine)
    assert result.exit_code == 1 and "gave 2 frames, fewer than the 3 history frames" in result.output
    wide = write_video(tmp_path / "wide.mp4", np.zeros((4, 32, 160, 3), np.uint8))
    result = _run("--input", str(wide), *engine)
    assert result.exit_code == 1 and "without cropping away more than half" in result.output
    assert not (tmp_path / "o.mp4").exists(), "no output is written for a failed run"


def test_bundle_errors(model_folder, clip_video, tmp_path):
    from vgpt.runtime.loading import cache_root

    common = ["--input", str(clip_video), "--output", str(tmp_path / "o.mp4")]
    assert _run(*common, "--engine", str(model_folder)).exit_code == 0
    bundle = next(cache_root().iterdir())
    denoise = next(bundle.rglob("denoise.onnx"))
    result = _run(*common, "--engine", str(denoise), "--steps", "7")
    assert result.exit_code == 1 and "re-export with --steps 7" in result.output
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    target = next(broken.rglob("prefill.onnx"))
    target.write_bytes(target.read_bytes()[:100])
    result = _run(*common, "--engine", str(broken))
    assert result.exit_code == 1 and "truncated or replaced" in result.output
    result = _run(*common, "--engine", str(tmp_path / "model.plan"))
    assert result.exit_code == 1 and "engines.json" in result.output  # no engine manifest beside it


def test_camera_that_stops_mid_run_keeps_what_was_predicted(model_folder, tmp_path, monkeypatch):
    frames = render_video(2, SceneConfig(height=32, width=32, frames=9))

    def camera():
        yield from frames
        raise SourceDisconnected("camera 0 stopped delivering frames")

    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("camera 0", 10.0, True, camera()))
    out = tmp_path / "live.mp4"
    result = _run("--input", "0", "--engine", str(model_folder), "--output", str(out), "--live")
    assert result.exit_code == 1
    assert "camera 0 stopped delivering frames" in result.output
    # The camera outruns the predictor, so the bounded queue drops frames; whatever was predicted
    # before the disconnect is in the video.
    predicted = int(re.search(r"predicted (\d+) frames in (\d+) clips", result.output).group(1))
    assert predicted >= 2 and probe(out).frames == predicted


def test_live_mode_from_a_generator_source(model_folder, tmp_path, monkeypatch):
    frames = render_video(4, SceneConfig(height=32, width=32, frames=50))
    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("generator", 10.0, False, iter(frames)))
    out = tmp_path / "live.mp4"
    result = _run("--input", "gen", "--engine", str(model_folder), "--output", str(out), "--live",
                  "--max-frames", "11")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_frames(out).shape[0] == probe(out).frames > 0


@pytest.mark.parametrize("backend", ["torch"])
def test_torch_backend_from_the_cli(model_folder, clip_video, tmp_path, backend):
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "t.mp4"),
                  "--backend", backend, "--clips", "1")  # fmt: skip
    assert result.exit_code == 0 and "(torch)" in result.output
