import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from vgpt.cli.run import run_main
from vgpt.default_model import bundled_model_note
from vgpt.runtime import run as run_module
from vgpt.runtime.run import ArrivalRate, _StatsLog
from vgpt.runtime.sources import FrameSource, SourceDisconnected
from vgpt.synthetic import SceneConfig, render_video
from vgpt.video import probe, read_frames, write_video


def _run(*args):
    """vgpt-run as a user types it: progress display on (conftest sets VGPT_PROGRESS=1 so that the bars
    really draw although pytest's output is no terminal)."""
    return CliRunner().invoke(run_main, list(args))


def test_vgpt_run_writes_a_side_by_side_video(model_folder, clip_video, tmp_path):
    out = tmp_path / "out.mp4"
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(out), "--clips", "3",
                  "--frames-dir", str(tmp_path / "png"), "--latents", str(tmp_path / "lat.npz"),
                  "--sheet", str(tmp_path / "sheet.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    import cv2

    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    # Three rows (observed, true future: the video has 12 frames, predicted) of 32 px frames enlarged.
    assert sheet is not None and sheet.shape[0] > 3 * 32 * 3 and sheet.shape[1] > 9 * 32 * 3
    info = probe(out)
    # History 3 + 3 clips x 2 frames; two 32 px panels enlarged 8x with a 4 px divider.
    assert (info.frames, info.height, info.width) == (3 + 6, 256, 2 * 256 + 4)
    assert len(list((tmp_path / "png").glob("*.png"))) == 6
    assert np.load(tmp_path / "lat.npz")["prediction"].shape == (6, 4, 4, 4)
    assert "predicted 6 frames in 3 clips" in result.output and "ms per denoising step" in result.output
    assert not list(tmp_path.glob(".*")), "no temporary file is left"


def test_vgpt_run_layout_runs_any_layout_of_a_bundle_and_exports_a_checkpoint_at_one(
    two_layout_bundle, model_folder, clip_video, tmp_path
):
    """--layout picks a bundle's second layout (by name or M,G) and exports a checkpoint at M,G; a name the
    bundle lacks, or a name on a checkpoint, is one error line."""
    for engine, layout, frames in ((two_layout_bundle, "m2-g1-4x4", 2 + 3), (two_layout_bundle, "2,1", 2 + 3),
                                   (model_folder, "2,1", 2 + 3)):  # fmt: skip
        out = tmp_path / f"{layout}.mp4"
        result = _run("--input", str(clip_video), "--engine", str(engine), "--layout", layout, "--clips", "3",
                      "--output", str(out))  # fmt: skip
        assert result.exit_code == 0, result.output
        assert probe(out).frames == frames and "predicted 3 frames in 3 clips" in result.output
    for engine, layout, message in ((two_layout_bundle, "m9-g9-4x4", "has no layout 'm9-g9-4x4'"),
                                    (model_folder, "m2-g1-4x4", "names one of a bundle's layouts")):  # fmt: skip
        result = _run("--input", str(clip_video), "--engine", str(engine), "--layout", layout,
                      "--output", str(tmp_path / "x.mp4"))  # fmt: skip
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "x.mp4").exists()


def test_offline_mode_keeps_only_the_history_at_input_resolution(model_folder, tmp_path, monkeypatch):
    """A 1080p input with 9 clips once peaked at 2.9 GB: every frame was kept at full resolution. Now only
    the M history frames are; the rest are kept at the layout's size for the video. Counted, not timed:
    full-size frames still alive when the prediction starts."""
    import gc
    import weakref

    from vgpt.runtime.predictor import VideoPredictor

    alive = []

    def frames():
        for i in range(40):
            frame = np.full((240, 320, 3), i, np.uint8)
            alive.append(weakref.ref(frame))
            yield frame

    counted = []
    predict = VideoPredictor.predict

    def counting(self, *args, **kwargs):
        gc.collect()
        counted.append(sum(ref() is not None for ref in alive))
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(VideoPredictor, "predict", counting)
    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("big", 10.0, False, frames()))
    result = _run("--input", "big", "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"), "--clips", "9")
    assert result.exit_code == 0, result.output
    # History 3 of the 3 + 9 x 2 frames read (the source generator may hold its newest frame too).
    assert counted and counted[0] <= 3 + 1, f"{counted[0]} full-size frames alive"


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
    bundle = next(p for p in cache_root().iterdir() if p.is_dir())
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
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "model.plan").write_bytes(b"plan")
    result = _run(*common, "--engine", str(plans / "model.plan"))
    assert result.exit_code == 1 and "has no engines.json" in result.output  # no engine manifest beside it


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
    predicted = int(re.search(r"predicted (\d+) frames? in (\d+) clips?", result.output).group(1))
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


def test_live_mode_with_default_settings_shows_progress(model_folder, clip_video, tmp_path):
    # A tqdm bar without a total used to be tested with `if bar:`, which raises TypeError in live mode.
    out = tmp_path / "live.mp4"
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(out), "--live")
    assert result.exit_code == 0, result.output
    assert "predict:" in result.output and "clip" in result.output  # the bar drew
    assert probe(out).frames > 0


def test_a_training_checkpoint_runs_with_the_default_or_a_given_codec(model_folder, clip_video, tmp_path, caplog):
    import shutil

    step = tmp_path / "run" / "checkpoints" / "step-0000001"
    shutil.copytree(model_folder / "model", step / "model")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-0000001\n")
    common = ["--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), "--clips", "1", "--steps", "2"]
    result = _run(*common, "--engine", str(tmp_path / "run"), "--codec", str(model_folder / "codec"))
    assert result.exit_code == 0, result.output
    # With no codec beside it and none given, the bundled codec (4 latent channels, as tiny's) with a note.
    with caplog.at_level("INFO", logger="vgpt.default_model"):
        result = _run(*common, "--engine", str(step))
    assert result.exit_code == 0, result.output
    assert "using the bundled codec" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "1000"], "threads: use 1 .."),
        (["--threads", "0"], "threads: use 1 .."),
        (["--clips", "0"], "--clips"),
        (["--clips", "-1"], "--clips"),
        (["--steps", "0"], "--steps"),
        (["--guidance", "-1"], "--guidance"),
        (["--seed", str(2**64)], "--seed"),
        (["--max-frames", "0"], "--max-frames"),
    ],
)
def test_resource_flags_are_validated_before_anything_runs(args, message, tmp_path):
    result = _run("--input", str(tmp_path / "never-read.mp4"), *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_an_engine_path_that_does_not_exist_says_so(clip_video, tmp_path):
    result = _run("--input", str(clip_video), "--engine", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "nowhere does not exist" in result.output


def test_an_engine_plan_in_a_folder_that_does_not_exist_says_so(clip_video, tmp_path):
    # The README's `vgpt-run --engine engines/model.plan` before any vgpt-build: it said "has no engines.json".
    result = _run("--input", str(clip_video), "--engine", str(tmp_path / "engines" / "model.plan"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'engines' / 'model.plan'} does not exist: build engines with vgpt-build" in result.output


def test_a_too_short_video_is_refused_before_the_model_loads(model_folder, tmp_path, monkeypatch, caplog):
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded for an input that cannot be predicted from")

    monkeypatch.setattr(run_module, "load_predictor", never)
    short = write_video(tmp_path / "short.mp4", render_video(1, SceneConfig(height=32, width=32, frames=2)))
    for engine in (["--engine", str(model_folder)], []):  # a model folder (history 3), the bundled default (4)
        result = _run("--input", str(short), *engine)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "gave 2 frames, fewer than the" in result.output
    assert "bundled model is a demonstration" not in caplog.text, "an input error is the only line"
    # With the bundled default, the run's first line says what that model is (from defaults.json).
    long_enough = write_video(tmp_path / "long.mp4", render_video(1, SceneConfig(height=32, width=32, frames=8)))
    result = _run("--input", str(long_enough))
    assert result.exit_code == 1 and "the model was loaded" in str(result.exception)
    assert caplog.records[0].getMessage() == f"note: {bundled_model_note()}"


def test_opencv_and_ffmpeg_print_nothing_before_vgpts_own_error(tmp_path):
    # "moov atom not found" (FFmpeg) and "can't open camera by index" (OpenCV) came before the Error line.
    import subprocess
    import sys

    (tmp_path / "corrupt.mp4").write_bytes(b"garbage" * 300)
    for source in (str(tmp_path / "corrupt.mp4"), "7"):
        done = subprocess.run([sys.executable, "-c", "from vgpt.cli.run import run_main; run_main()", "--input",
                               source, "--output", str(tmp_path / "o.mp4")], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 1 and (done.stdout + done.stderr).strip().splitlines() == [
            f"Error: cannot open {'camera 7' if source == '7' else source + ' as a video'}"
        ], done.stdout + done.stderr


def test_the_bundled_model_is_called_a_demonstration_in_help_and_the_readme():
    from pathlib import Path

    import vgpt
    from vgpt.default_model import DEFAULT_DIR, SETTINGS

    trained_on = json.loads((DEFAULT_DIR / SETTINGS).read_text())["trained_on"]
    assert trained_on in bundled_model_note() and "vgpt-train --data" in bundled_model_note()
    help_text = " ".join(_run("--help").output.split())
    assert " ".join(bundled_model_note().split()) in help_text
    readme = (Path(vgpt.__file__).parents[1] / "README.md").read_text()
    quick_start = " ".join(readme.split("## Quick start")[1].split("\n## ")[0].split())
    assert "The bundled model is a demonstration" in quick_start and trained_on in quick_start
    assert "vgpt-train --config bundled --data" in quick_start


def test_live_mode_streams_every_output_to_disk_as_it_predicts(model_folder, tmp_path, monkeypatch, caplog):
    """Live outputs are written while the stream runs (memory stays at one clip however long it runs), and
    finished into complete files when the camera disconnects: video, PNG frames, latents and sheet."""
    import time

    frames = render_video(6, SceneConfig(height=32, width=32, frames=40))
    out = tmp_path / "live.mp4"
    seen_while_running = []

    def camera():
        for frame in frames[:20]:
            time.sleep(0.01)  # at most 100 fps: clip_lasts stays well above the log's 4 digits
            yield frame
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob(".live.*.mp4.tmp")):
            time.sleep(0.05)  # the predictor catches up with the 20 frames and starts writing
        seen_while_running.extend(tmp_path.glob(".live.*.mp4.tmp"))
        yield from frames[20:]
        raise SourceDisconnected("camera 0 stopped delivering frames")

    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("camera 0", 10.0, True, camera()))
    result = _run("--input", "0", "--engine", str(model_folder), "--output", str(out), "--live", "--queue-size", "64",
                  "--frames-dir", str(tmp_path / "png"), "--latents", str(tmp_path / "z.npz"),
                  "--sheet", str(tmp_path / "sheet.png"), "--stats", str(tmp_path / "stats.jsonl"))  # fmt: skip
    assert result.exit_code == 1 and "stopped delivering frames" in result.output, result.output
    assert seen_while_running, "the video was not being written while the stream ran"
    predicted = int(re.search(r"predicted (\d+) frames? in", result.output).group(1))
    assert predicted >= 4 and probe(out).frames == predicted
    assert len(list((tmp_path / "png").glob("*.png"))) == predicted
    assert np.load(tmp_path / "z.npz")["prediction"].shape == (predicted, 4, 4, 4)  # tiny: 4x4 latents of 4 channels
    assert (tmp_path / "sheet.png").stat().st_size > 0
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [s["clips"] for s in stats] == list(range(1, predicted // 2 + 1))  # G = 2 frames per clip
    assert all(s["clip_seconds"] > 0 and s["observed"] >= 3 for s in stats)
    # a clip of G = 2 frames lasts 2 / arrival_fps seconds, at the rate the frames came (this camera sends 20
    # quickly, then waits): each line says whether it was predicted faster; fps is the rate it declared
    assert all(s["fps"] == 10.0 and s["arrival_fps"] > 0 for s in stats)
    assert all(s["clip_lasts"] == pytest.approx(2 / s["arrival_fps"], abs=1e-4) for s in stats)  # 4 digits
    # judged once the newest 40 frames measure the rate (observed and dropped: this camera sends 40)
    judged = [s for s in stats if s["observed"] + s["dropped"] >= 40]
    assert all(s["keeps_up"] is None for s in stats if s not in judged)
    close = 1e-3  # the log rounds to 4 digits: a clip within that of its length may read either way
    assert all(s["keeps_up"] == (s["clip_seconds"] < s["clip_lasts"]) for s in judged
               if abs(s["clip_seconds"] - s["clip_lasts"]) > close)  # fmt: skip
    if judged:
        kept = sum(s["keeps_up"] for s in judged)
        assert f"{kept} of {len(judged)} clips predicted faster than they last" in caplog.text
    else:
        assert f"{len(stats)} clip(s) predicted before the stream's rate was measured" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_ctrl_c_in_live_mode_keeps_the_video_joins_the_capture_thread_and_exits_130(model_folder, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    import threading

    frames = render_video(3, SceneConfig(height=32, width=32, frames=40))

    def camera():
        yield from frames[:12]
        raise KeyboardInterrupt  # what Ctrl-C (or SIGTERM, through vgpt-run's handler) raises

    monkeypatch.setattr(run_module, "open_source", lambda spec: FrameSource("camera 0", 10.0, True, camera()))
    out = tmp_path / "live.mp4"
    result = _run("--input", "0", "--engine", str(model_folder), "--output", str(out), "--live", "--queue-size", "64")
    assert result.exit_code == 130, result.output
    assert "Interrupted" in result.output
    assert probe(out).frames > 0, "a playable file with what was predicted"
    assert not [t for t in threading.enumerate() if t.name == "vgpt-capture" and t.is_alive()]


def test_live_max_frames_below_the_history_is_refused(model_folder, clip_video, tmp_path):
    result = _run("--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
                  "--live", "--max-frames", "2")  # fmt: skip
    assert result.exit_code == 1 and "--max-frames 2 stops before the 3 history frames" in result.output


@pytest.mark.parametrize(
    ("output", "message"),
    [("folder", "is a folder"), ("file/o.mp4", "is a file, so no folder"), ("o.avi", "name a .mp4 or .mcap file")],
)
def test_output_paths_are_checked_before_the_model_loads(output, message, clip_video, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    result = _run("--input", str(clip_video), "--engine", str(tmp_path / "never-loaded"),
                  "--output", str(tmp_path / output))  # fmt: skip
    assert result.exit_code == 1 and message in result.output and str(tmp_path / output) in result.output


def test_frames_dir_naming_a_file_is_refused_before_anything_is_written(clip_video, tmp_path):
    (tmp_path / "frames").write_text("x")
    result = _run("--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), "--frames-dir",
                  str(tmp_path / "frames"))  # fmt: skip
    assert result.exit_code == 1 and "is a file; name a folder" in result.output
    assert not (tmp_path / "o.mp4").exists()
    result = _run("--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), "--live", "--stats",
                  str(tmp_path / "frames" / "stats.jsonl"))  # fmt: skip
    assert result.exit_code == 1 and "--stats" in result.output and "is a file, so no folder" in result.output


def test_a_damaged_cached_export_is_rebuilt_with_a_note(model_folder, clip_video, tmp_path, caplog):
    from vgpt.runtime.loading import cache_root, cached_export

    common = ["--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), "--engine", str(model_folder),
              "--clips", "1"]  # fmt: skip
    assert _run(*common).exit_code == 0
    entry = cached_export(model_folder, None, None)  # the export that run used (the cache holds other tests' too)
    graph = next(entry.rglob("decoder.onnx"))
    graph.write_bytes(graph.read_bytes()[:100])  # truncated, as a full disk or a killed copy leaves it
    (cache_root() / f".{entry.name}.abc.tmp").mkdir()  # a temporary folder of an export that was killed
    with caplog.at_level("INFO", logger="vgpt.runtime.loading"):
        result = _run(*common)
    assert result.exit_code == 0, result.output
    assert "is damaged" in caplog.text and "exporting it again" in caplog.text
    assert not list(cache_root().glob(".*.tmp")), "leftovers of killed exports are cleaned"
    (entry / "manifest.json").write_text("{broken")
    with caplog.at_level("INFO", logger="vgpt.runtime.loading"):
        assert _run(*common).exit_code == 0


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", "\udcff{}", "[" * 100_000 + "]" * 100_000])
def test_a_broken_bundle_manifest_is_one_error_line_and_a_broken_cached_one_is_repaired(
    model_folder, clip_video, tmp_path, text
):
    """The audit: invalid JSON, a JSON list or bytes that are not UTF-8 in --engine's manifest were a
    traceback; a cached manifest nested 100,000 deep was a RecursionError on every run, never repaired."""
    from vgpt.runtime.loading import cache_root

    common = ["--input", str(clip_video), "--output", str(tmp_path / "o.mp4"), "--clips", "1"]
    assert _run(*common, "--engine", str(model_folder)).exit_code == 0
    entry = next(p for p in cache_root().iterdir() if p.is_dir() and not p.name.startswith("."))
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text(text, errors="surrogateescape")
    result = _run(*common, "--engine", str(tmp_path / "bundle"))
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "Traceback" not in result.output
    assert "manifest.json" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    (entry / "manifest.json").write_text(text, errors="surrogateescape")
    assert _run(*common, "--engine", str(model_folder)).exit_code == 0  # exported again
    assert _run(*common, "--engine", str(model_folder), "--trust-cache").exit_code == 0


def test_arrival_rate_is_measured_from_the_stamps_and_dropped_frames_count():
    rate = ArrivalRate(25.0, window=3)  # 25: what OpenCV declares for an HTTP MJPEG stream
    assert rate.fps == 25.0 and not rate.measured  # nothing measured yet
    rate.add(0, 1)
    assert rate.fps == 25.0  # one frame: no interval yet
    rate.add(100_000_000, 2)
    assert not rate.measured
    rate.add(300_000_000, 4)  # the frame at 200 ms was dropped: 4 came in 300 ms
    assert rate.fps == pytest.approx(10.0) and rate.measured
    recording = ArrivalRate(25.0, live=False)  # a file's frames come at the rate it declares
    recording.add(0, 1)
    assert recording.measured and recording.fps == 25.0
    # a burst (frames buffered while the model loaded), then a 10 fps camera: once the window holds only
    # the camera's frames, the burst is forgotten
    burst = ArrivalRate(25.0, window=5)
    for k in range(20):
        burst.add(k * 1_000_000, k + 1)  # 20 frames in 19 ms
    assert burst.fps > 500
    for k in range(1, 6):
        burst.add(19_000_000 + k * 100_000_000, 20 + k)
    assert burst.fps == pytest.approx(10.0)


def test_stats_say_whether_clips_keep_up_with_the_measured_rate(tmp_path):
    rate = ArrivalRate(25.0, window=9)
    stats = _StatsLog(str(tmp_path / "s.jsonl"), 4, rate)  # a clip of 4 frames lasts 0.4 s at 10 fps
    assert "before the stream's rate was measured" in stats.verdict()
    for k in range(8):
        rate.add(k * 100_000_000, k + 1)  # a 10 fps camera
    stats.write(clip_seconds=0.9)  # 8 frames of 9: not judged yet
    rate.add(800_000_000, 9)
    stats.write(clip_seconds=0.3)  # faster than it lasts at 10 fps, though not at the declared 25 (0.16 s)
    stats.write(clip_seconds=0.5)
    stats.close()
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(s["fps"], s["arrival_fps"], s["clip_lasts"], s["keeps_up"]) for s in lines] == [
        (25.0, 10.0, 0.4, None), (25.0, 10.0, 0.4, True), (25.0, 10.0, 0.4, False)]  # fmt: skip
    assert stats.verdict() == ("did NOT keep up with the stream's 10 fps (declared 25): 1 of 2 clips predicted "
                               "faster than they last (0.400 s; slowest 0.500 s); 1 clip(s) before the rate "
                               "was measured")  # fmt: skip
