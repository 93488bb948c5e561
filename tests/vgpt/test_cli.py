import re

import numpy as np
from click.testing import CliRunner

from vgpt.cli import predict_main


def test_vgpt_predict_compares_both_predictors(tmp_path):
    out = tmp_path / "latents.npz"
    result = CliRunner().invoke(
        predict_main,
        ["--preset", "tiny", "--history", "3", "--clip", "2", "--latent-size", "4x4", "--clips", "2",
         "--steps", "3", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    diff = float(re.search(r"max abs difference (\S+),", result.output).group(1))
    assert diff < 1e-4  # fp32 round-off, as in tests/vgpt/test_predictors.py
    data = np.load(out)
    assert data["history"].shape == (1, 3, 4, 4, 4) and data["prediction"].shape == (1, 4, 4, 4, 4)


def test_vgpt_predict_rejects_a_bad_layout():
    result = CliRunner().invoke(predict_main, ["--preset", "tiny", "--latent-size", "5x4"])
    assert result.exit_code == 1
    assert "Error: Layout.latent_height=5 is not divisible by the patch size 2" in result.output
    result = CliRunner().invoke(predict_main, ["--latent-size", "big"])
    assert result.exit_code == 2 and "expected HxW latents" in result.output
