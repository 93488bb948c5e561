import re

import numpy as np
from click.testing import CliRunner

from vgpt.cli.predict import predict_main


def test_vgpt_predict_compares_both_predictors(tmp_path):
    out = tmp_path / "latents.npz"
    result = CliRunner().invoke(
        predict_main,
        ["--preset", "tiny", "--layout", "3,2,4x4", "--clips", "2",
         "--steps", "3", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    diff = float(re.search(r"max abs difference (\S+),", result.output).group(1))
    assert diff < 1e-4  # fp32 round-off, as in tests/vgpt/test_predictors.py
    data = np.load(out)
    assert data["history"].shape == (1, 3, 4, 4, 4) and data["prediction"].shape == (1, 4, 4, 4, 4)


def test_vgpt_predict_rejects_a_bad_layout():
    result = CliRunner().invoke(predict_main, ["--preset", "tiny", "--layout", "8,4,5x4"])
    assert result.exit_code == 1
    assert "Error: Layout.latent_height=5 is not divisible by the patch size 2" in result.output
    result = CliRunner().invoke(predict_main, ["--layout", "big"])
    assert result.exit_code == 2 and "expected M,G,HxW in latents, M,G,HxWpx in pixels or M,G" in result.output
    result = CliRunner().invoke(predict_main, ["--layout", "0,4,8x8"])
    assert result.exit_code == 2 and "every number must be at least 1" in result.output


def test_one_layout_spelling_in_latents_pixels_or_the_default_size():
    from vgpt.commands import LAYOUT
    from vgpt.config import get_preset

    config = get_preset("tiny")
    latents = LAYOUT.convert("4,2,8x6", None, None).resolve(config)
    pixels = LAYOUT.convert("4,2,64x48PX", None, None).resolve(config)
    default = LAYOUT.convert("4,2", None, None).resolve(config, (64, 48))
    assert latents == pixels == default
    assert (latents.history_frames, latents.clip_frames, latents.latent_height, latents.latent_width) == (4, 2, 8, 6)
    assert str(LAYOUT.convert(" 4,2,64x48px ", None, None)) == "4,2,64x48px"


def test_vgpt_predict_samples_a_student_with_its_table(tmp_path):
    from tests.conftest import random_model
    from vgpt.checkpoint import save_checkpoint
    from vgpt.config import get_preset
    from vgpt.student import StudentSampler

    record = StudentSampler((0.0, 0.5, 1.0), 2.0, 3.0, 8, "0" * 64, "consistency")
    path = save_checkpoint(random_model(get_preset("tiny")), tmp_path / "student", extra={"student": record.to_dict()})
    result = CliRunner().invoke(predict_main, ["--checkpoint", str(path), "--layout", "3,2,4x4", "--clips", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("2 steps, guidance 1.0") == 2, result.output


def test_default_threads_leave_the_cores_other_processes_use(monkeypatch):
    import os

    from vgpt.commands import default_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    for load, threads in ((0.0, 8), (3.2, 5), (7.9, 1), (15.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert default_threads() == threads, load


def test_train_and_eval_take_threads():
    from click.testing import CliRunner

    from vgpt.cli.eval import eval_main
    from vgpt.cli.train import train_main

    for command in (train_main, eval_main):
        result = CliRunner().invoke(command, ["--help"])
        assert "--threads" in result.output and "load leaves idle" in " ".join(result.output.split())
        assert CliRunner().invoke(command, ["--threads", "0"]).exit_code == 2


def test_help_texts_state_the_bundled_models_settings_from_defaults_json():
    import json

    from vgpt.cli.eval import eval_main
    from vgpt.default_model import DEFAULT_DIR, SETTINGS

    shift = json.loads((DEFAULT_DIR / SETTINGS).read_text())["shift"]
    text = " ".join(CliRunner().invoke(eval_main, ["--help"]).output.split())
    assert f"{shift:g} for the bundled one" in text  # it said 1 while the model ran 3
