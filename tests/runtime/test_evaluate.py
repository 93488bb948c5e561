import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.checkpoint import save_checkpoint
from vgpt.cli.eval import eval_main
from vgpt.cli.train import synth_main
from vgpt.codecs import LightCodec
from vgpt.config import ConfigError, get_preset
from vgpt.default_model import default_model
from vgpt.evaluation import EvalConfig, Rollouts, miss_table, report
from vgpt.frames import fit_frames
from vgpt.metrics import psnr
from vgpt.synthetic import EVAL_SEED_START, SceneConfig, render_video, scene_objects


def test_vgpt_eval_reports_model_and_baseline_mse(tmp_path):
    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(tmp_path / "codec")
    out = tmp_path / "eval.json"
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(tmp_path / "codec"), "--count", "3",
            "--layout", "2,2", "--steps", "2", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clips"] == 3 and report["model_mse"] > 0 and report["baseline_mse"] > 0
    # The copy-last-frame baseline recomputed here from the scenes themselves: the first clip's 2 frames
    # against the last of the 2 observed ones, pixels in [0, 1]. Same arithmetic in float32 and float64:
    # 1e-5 relative.
    scenes = [render_video(EVAL_SEED_START + i, SceneConfig(height=64, width=64, frames=6)) / 255 for i in range(3)]
    expected = sum(((s[2:4] - s[1:2]) ** 2).mean() for s in scenes) / 3
    assert report["baseline_mse"] == pytest.approx(expected, rel=1e-5)
    assert report["ratio"] == pytest.approx(report["model_mse"] / report["baseline_mse"], rel=1e-9)
    assert report["source"] == "synthetic seeds 1000000..1000002"
    # The codec round trip is the true future (frames 2, 3 of each scene), not the observed frames,
    # through the codec: its PSNR recomputed here, the same arithmetic up to float32 round-off.
    codec = LightCodec.load(tmp_path / "codec")
    future = torch.stack([fit_frames(render_video(EVAL_SEED_START + i, SceneConfig(frames=6))[2:4], 64, 64)
                          for i in range(3)])  # fmt: skip
    with torch.no_grad():
        round_trip = (codec.decode_video(codec.encode_video(future)).clamp(-1, 1).numpy() + 1) / 2
    truth = (future.numpy() + 1) / 2
    pairs = zip(round_trip, truth, strict=True)
    expected = np.mean([psnr(np.moveaxis(r, 1, -1), np.moveaxis(t, 1, -1)) for r, t in pairs], axis=0)
    assert report["codec_round_trip"]["psnr_by_horizon"][:2] == pytest.approx(expected.tolist(), abs=1e-3)
    # The same through real files: vgpt-synth writes the held-out scenes, vgpt-eval reads them.
    assert CliRunner().invoke(synth_main, ["--out", str(tmp_path / "v"), "--count", "3", "--frames", "4",
                                           "--seed-start", "1000000"]).exit_code == 0  # fmt: skip
    videos = [*args[:-2], "--videos", str(tmp_path / "v"), "--json", str(out)]
    result = CliRunner().invoke(eval_main, videos)  # two clips of 2 after 2 observed frames need 6 frames
    assert result.exit_code == 1 and "need 6 frames per video: use longer videos or fewer clips" in result.output
    result = CliRunner().invoke(eval_main, [*videos, "--num-clips", "1"])
    assert result.exit_code == 0, result.output
    assert "object scores skipped" in result.output
    from_files = json.loads(out.read_text())
    # H.264 at crf 18 changes pixels slightly; the baseline moves little.
    assert abs(from_files["baseline_mse"] - report["baseline_mse"]) < 0.2 * report["baseline_mse"]
    # Videos have no object truth: pixel figures only, and no constant-velocity baseline (it finds balls by colour).
    assert from_files["objects"] is None and list(from_files["baselines"]) == ["copy_last"]
    assert len(from_files["psnr_by_horizon"]) == len(from_files["baselines"]["copy_last"]["ssim_by_horizon"]) == 2


def test_vgpt_eval_rolls_out_clips_and_scores_objects(tmp_path, caplog):
    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(tmp_path / "codec")
    out, plot, sheet = tmp_path / "eval.json", tmp_path / "plot.png", tmp_path / "sheet.png"
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(tmp_path / "codec"), "--count", "2",
            "--layout", "2,2", "--steps", "2", "--json", str(out), "--plot", str(plot),
            "--sheet", str(sheet), "--sheet-clips", "2"]  # fmt: skip
    result = CliRunner().invoke(eval_main, [*args, "--progress"])
    assert result.exit_code == 0, result.output
    assert "eval: 100%" in result.output, "the bar draws (VGPT_PROGRESS=1 shows it on any output)"
    report = json.loads(out.read_text())
    assert report["num_clips"] == 2 and report["horizons"] == [1, 2, 3, 4]  # the default: 2 clips of G = 2
    objects = report["objects"]
    assert 0 <= objects["presence"] <= 1 and len(objects["presence_by_horizon"]) == 4
    assert len(objects["centroid_error_by_horizon"]) == 4 and "colour_error" in objects
    for name in ("copy_last", "constant_velocity"):
        baseline = report["baselines"][name]
        assert len(baseline["presence_by_horizon"]) == len(baseline["centroid_error_by_horizon"]) == 4
        assert len(baseline["psnr_by_horizon"]) == len(baseline["ssim_by_horizon"]) == 4
        assert baseline["centroid_error_px"] is not None
    # Copying the last frame keeps every ball sharp: it is present a frame later.
    assert report["baselines"]["copy_last"]["presence_by_horizon"][0] == 1.0
    round_trip = report["codec_round_trip"]  # the ceiling of any latent prediction, beside the baselines
    assert len(round_trip["presence_by_horizon"]) == len(round_trip["psnr_by_horizon"]) == 4
    header = next(line for line in result.output.splitlines() if "model" in line and "copy" in line)
    assert header.split()[:4] == ["model", "copy", "c.vel", "codec"]  # a column of the table
    assert len(report["psnr_by_horizon"]) == len(report["ssim_by_horizon"]) == 4
    assert "presence" in result.output and "+4" in result.output  # the table by horizon
    assert "most misses" in result.output and len(objects["misses"]["dominant_by_horizon"]) == 4  # vgpt.misses
    # The plot and the sheet: 2 scenes x 5 rows (observed, truth, predicted, 2 baselines) of 64 px frames x 3.
    assert plot.stat().st_size > 10_000
    for path in (out, plot, sheet):  # said once (the library logged it and the command printed it)
        assert (result.output + caplog.text).count(f"wrote {path}") == 1, path
    image = cv2.imread(str(sheet))
    assert image.shape[0] > 2 * 5 * 192 and image.shape[1] > 4 * 192
    # --no-progress turns the bar off (it is also off when the output is not a terminal, unless
    # VGPT_PROGRESS=1, as the test suite sets it).
    result = CliRunner().invoke(eval_main, [*args[:12], "--count", "1", "--num-clips", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "eval:" not in result.output and "+2" in result.output and "+3" not in result.output


def test_vgpt_eval_option_errors():
    result = CliRunner().invoke(eval_main, ["--bundle", "b", "--shift", "2"])
    assert result.exit_code == 2 and "--shift cannot be combined with --bundle" in result.output
    result = CliRunner().invoke(eval_main, ["--num-clips", "0"])
    assert result.exit_code == 2 and "Invalid value for '--num-clips': 0 is not in the range x>=1" in result.output
    result = CliRunner().invoke(eval_main, ["--count", "1", "--sheet-clips", "2", "--steps", "1"])
    assert result.exit_code == 1 and "sheet_clips=2 is more than the 1 scenes evaluated" in result.output


def test_eval_config_defaults_and_errors():
    config = EvalConfig()
    assert config.progress and config.num_clips == 2 and config.sheet_clips == 1  # the bar is on by default
    with pytest.raises(ConfigError, match=r"EvalConfig.num_clips=0: must be a positive integer"):
        EvalConfig(num_clips=0)


def test_vgpt_eval_defaults_to_the_default_model(tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(eval_main, ["--count", "1", "--steps", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clips"] == 1 and report["history"] == 4 and report["clip"] == 4
    settings = default_model().settings  # the sampler the bundled model ships with, unless options say otherwise
    assert (report["guidance"], report["shift"]) == (settings["guidance"], settings["shift"])
    assert report["num_clips"] == 2 and len(report["objects"]["presence_by_horizon"]) == 8
    # The bundled codec keeps the balls of this scene: its round trip scores 0.93 presence over 64
    # held-out scenes (docs/bundled-model.md); one scene's 8 frames and 1-3 balls are coarser, hence 0.8.
    assert report["codec_round_trip"]["presence"] >= 0.8


def test_report_puts_every_miss_down_to_a_cause(tmp_path):
    # Held-out scenes predicted as the bare background: every scored ball has vanished; the round trip
    # is the truth itself, so none is codec loss. The table's last row and the plot say so.
    M, G = 2, 2
    scenes = [scene_objects(EVAL_SEED_START + i, SceneConfig(frames=M + 2 * G)) for i in range(2)]
    truth = np.stack([render_video(EVAL_SEED_START + i, SceneConfig(frames=M + 2 * G)) for i in range(2)])
    truth = np.moveaxis(truth, -1, 2) / 127.5 - 1  # [N, F, 3, H, W] in [-1, 1]
    bare = np.stack([np.broadcast_to(s.background[:, None, None] * 2 - 1, truth.shape[1:]) for s in scenes])
    info = {"clips": 2, "history": M, "clip": G, "num_clips": 2, "steps": 1, "guidance": 1.0, "shift": 1.0,
            "source": "synthetic seeds 1000000..1000001"}  # fmt: skip
    rollouts = Rollouts(bare[:, M:], truth, info, truth[:, M:])
    result = report(EvalConfig(checkpoint="m", codec="c", count=2, plot=str(tmp_path / "plot.png")), rollouts)
    misses = result["objects"]["misses"]
    assert result["objects"]["presence"] == 0 and misses["overall"]["vanished"] == 1.0
    assert misses["dominant_by_horizon"] == ["vanished"] * 4 and misses["missed"] == result["objects"]["scored"]
    assert miss_table(result).splitlines()[-1].split() == ["all", "0.00", "0.00", "0.00", "0.00", "0.00", "1.00",
                                                           "vanished"]  # fmt: skip
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_vgpt_eval_runs_any_layout_of_a_bundle(two_layout_bundle, tmp_path):
    """--layout with --bundle picks one of its layouts (by M,G or by name) instead of the first."""
    for layout in ("2,1", "m2-g1-4x4"):
        out = tmp_path / f"{layout}.json"
        args = ["--bundle", str(two_layout_bundle), "--layout", layout, "--count", "1", "--num-clips", "1"]
        result = CliRunner().invoke(eval_main, [*args, "--json", str(out), "--no-progress"])
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert (report["history"], report["clip"]) == (2, 1), layout
    result = CliRunner().invoke(eval_main, ["--layout", "m2-g1-4x4"])
    assert result.exit_code == 2 and "names one of a bundle's layouts: give --bundle" in result.output
