"""vgpt-train and vgpt-train-codec as a user types them (defaults, progress on)."""

import json
import os

from click.testing import CliRunner

from vgpt.training.cli import train_codec_main, train_main


def test_the_shipped_bundled_config_runs_as_documented(videos, tmp_path, monkeypatch):
    # The README's `vgpt-train --config bundled` used to fail on a missing runs/codec and wrote
    # runs/latents into the current folder whatever --out said.
    out = tmp_path / "run"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = ["--config", "bundled", "--data", str(videos), "--out", str(out), "--steps", "1", "--batch-size", "2"]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 0, result.output
    assert "using the bundled codec" in result.output
    assert (out / "checkpoints" / "step-0000001" / "model" / "manifest.json").is_file()
    assert any((out / "latents").iterdir()) and not any(cwd.iterdir()), "every output under --out"


def test_train_errors_are_one_line(videos, tmp_path):
    result = CliRunner().invoke(train_main, ["--config", "no-such-stage", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "no such config file or shipped stage" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(train_main, ["--config", "bundled", "--steps", "0"])
    assert result.exit_code == 2 and "--steps" in result.output


def test_codec_training_writes_readable_files(videos, tmp_path):
    out = tmp_path / "codec"
    args = ["--data", str(videos), "--out", str(out), "--steps", "2", "--batch-size", "2", "--size", "32",
            "--eval-count", "2"]  # fmt: skip
    result = CliRunner().invoke(train_codec_main, args)
    assert result.exit_code == 0, result.output
    assert "codec:" in result.output  # the progress bar drew (conftest shows bars on any output)
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, out / "codec.safetensors", out / "manifest.json"):
        mode = path.stat().st_mode & 0o777
        assert mode == ((0o777 if path.is_dir() else 0o666) & ~umask), (path, oct(mode))
    assert json.loads((out / "manifest.json").read_text())["format"] == "vgpt-light-codec"
