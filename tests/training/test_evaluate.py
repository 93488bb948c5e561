import json

import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.checkpoint import save_checkpoint
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.training.cli import eval_main, synth_main


def test_vgpt_eval_reports_model_and_baseline_mse(tmp_path):
    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    torch.manual_seed(0)
    LightCodec().eval().save(tmp_path / "codec")
    out = tmp_path / "eval.json"
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(tmp_path / "codec"), "--count", "3",
            "--history", "2", "--clip", "2", "--steps", "2", "--json", str(out)]  # fmt: skip
    result = CliRunner().invoke(eval_main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clips"] == 3 and report["model_mse"] > 0 and report["baseline_mse"] > 0
    assert abs(report["ratio"] - report["model_mse"] / report["baseline_mse"]) < 1e-12
    assert report["source"] == "synthetic seeds 1000000..1000002"
    # The same through real files: vgpt-synth writes the held-out scenes, vgpt-eval reads them.
    assert CliRunner().invoke(synth_main, ["--out", str(tmp_path / "v"), "--count", "3", "--frames", "4",
                                           "--seed-start", "1000000"]).exit_code == 0  # fmt: skip
    result = CliRunner().invoke(eval_main, [*args[:-2], "--videos", str(tmp_path / "v"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    from_files = json.loads(out.read_text())
    # H.264 at crf 18 changes pixels slightly; the baseline moves little.
    assert abs(from_files["baseline_mse"] - report["baseline_mse"]) < 0.2 * report["baseline_mse"]


def test_vgpt_eval_defaults_to_the_bundled_model(tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(eval_main, ["--count", "1", "--steps", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clips"] == 1 and report["history"] == 4 and report["clip"] == 4
