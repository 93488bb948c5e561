"""vgpt-train and vgpt-train-codec as a user types them (defaults, progress on)."""

import json
import os
import re

import pytest
import torch
from click.testing import CliRunner

from vgpt.cli.eval import eval_main
from vgpt.cli.train import distill_main, train_codec_main, train_main
from vgpt.codecs import LightCodec, LightCodecConfig
from vgpt.training.codec import foreground, reconstruction_loss


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


def test_training_into_the_same_run_again_and_resuming_it_work(videos, tmp_path):
    # A second `vgpt-train --config bundled` into a run whose latent cache is filled, and the README's
    # `--resume auto`, used to crash: with the cache filled, no codec was chosen and the cache refused
    # the empty codec id, naming a --latent-cache option that does not exist.
    out = tmp_path / "run"
    args = ["--config", "bundled", "--data", str(videos), "--out", str(out), "--batch-size", "2"]
    # A fresh run into it again is refused before anything is written (it would overwrite the run's
    # checkpoints); `--resume auto` continues it.
    for extra, code in ((["--steps", "1"], 0), (["--steps", "1"], 1), (["--steps", "2", "--resume", "auto"], 0)):
        result = CliRunner().invoke(train_main, args + extra)
        assert result.exit_code == code, result.output
        assert "using the bundled codec" in result.output
    assert "already holds a run" not in result.output
    assert "last checkpoint:" in result.output and (out / "checkpoints" / "step-0000002").is_dir()


def test_a_latent_cache_of_another_codec_is_one_error_naming_real_options(videos, codec_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--config", "bundled", "--data", str(videos), "--out", str(out), "--batch-size", "2", "--steps", "1"]
    assert CliRunner().invoke(train_main, [*args, "--codec", str(codec_dir)]).exit_code == 0
    # Without --codec, the cache made by codec_dir is trained on as it is (no codec needed) ...
    args += ["--resume", "auto"]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 0, result.output
    assert "training on the latents cached in" in result.output
    # ... and another codec is refused in one line that names what differs and how to fix it.
    other = LightCodec(LightCodecConfig(latent_channels=4)).save(tmp_path / "other")
    result = CliRunner().invoke(train_main, [*args, "--codec", str(other)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "was made with another codec" in result.output and "--codec" in result.output
    assert "--latent-cache" not in result.output


def test_a_model_refuses_a_codec_other_than_the_one_it_was_trained_on(videos, codec_dir, tmp_path):
    out = tmp_path / "run"
    args = ["--config", "bundled", "--data", str(videos), "--out", str(out), "--batch-size", "2", "--steps", "1",
            "--codec", str(codec_dir)]  # fmt: skip
    assert CliRunner().invoke(train_main, args).exit_code == 0
    torch.manual_seed(1)
    other = LightCodec().save(tmp_path / "other")
    result = CliRunner().invoke(eval_main, ["--checkpoint", str(out), "--codec", str(other), "--count", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "makes other latents" in result.output and f"pass --codec {codec_dir}" in result.output


def test_train_errors_are_one_line(videos, tmp_path):
    result = CliRunner().invoke(train_main, ["--config", "no-such-stage", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "no such config file or shipped stage" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(train_main, ["--config", "bundled", "--steps", "0"])
    assert result.exit_code == 2 and "--steps" in result.output


def test_codec_training_writes_readable_files(videos, tmp_path):
    out = tmp_path / "codec"
    args = ["--data", str(videos), "--out", str(out), "--steps", "2", "--batch-size", "2", "--size", "32",
            "--eval-count", "2", "--latent-channels", "8"]  # fmt: skip
    result = CliRunner().invoke(train_codec_main, args)
    assert result.exit_code == 0, result.output
    assert "codec:" in result.output  # the progress bar drew (conftest shows bars on any output)
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, out / "codec.safetensors", out / "manifest.json"):
        mode = path.stat().st_mode & 0o777
        assert mode == ((0o777 if path.is_dir() else 0o666) & ~umask), (path, oct(mode))
    assert json.loads((out / "manifest.json").read_text())["format"] == "vgpt-light-codec"
    codec = LightCodec.load(out)
    assert codec.latent_channels == 8 and codec.encode(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 4, 4)


def test_codec_training_refuses_an_existing_codec_without_force(videos, codec_dir, tmp_path):
    before = (codec_dir / "codec.safetensors").read_bytes()
    args = ["--data", str(videos), "--out", str(codec_dir), "--steps", "1", "--batch-size", "2", "--size", "32",
            "--eval-count", "1"]  # fmt: skip
    result = CliRunner().invoke(train_codec_main, args)
    assert result.exit_code == 1 and "already exists: pass --force" in result.output, result.output
    assert (codec_dir / "codec.safetensors").read_bytes() == before
    copy = tmp_path / "copy"
    LightCodec.load(codec_dir).save(copy)
    result = CliRunner().invoke(train_codec_main, [*args[:2], "--out", str(copy), *args[4:], "--force"])
    assert result.exit_code == 0, result.output


def test_decoder_only_codec_training_keeps_the_latents(videos, codec_dir, tmp_path):
    # The latents a transformer was trained on must stay bit-identical: same encoder weights, same
    # scaling factor; only the decoder learns.
    out = tmp_path / "decoder"
    args = ["--data", str(videos), "--out", str(out), "--init", str(codec_dir), "--decoder-only", "--steps", "3",
            "--batch-size", "2", "--size", "32", "--eval-count", "2", "--foreground-weight", "4"]  # fmt: skip
    result = CliRunner().invoke(train_codec_main, args)
    assert result.exit_code == 0, result.output
    before, after = LightCodec.load(codec_dir), LightCodec.load(out)
    assert after.scaling_factor == before.scaling_factor
    for (name, a), b in zip(after.encoder.state_dict().items(), before.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    pairs = zip(after.decoder.parameters(), before.decoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    manifest = json.loads((out / "manifest.json").read_text())["extra"]
    assert manifest["decoder_only"] and manifest["foreground_weight"] == 4
    result = CliRunner().invoke(train_codec_main, ["--data", str(videos), "--out", str(out), "--decoder-only"])
    assert result.exit_code == 2 and "--decoder-only trains the decoder of an existing codec" in result.output


def test_the_foreground_weight_finds_a_ball_on_a_flat_background():
    frames = torch.full((1, 3, 16, 16), -0.5)
    frames[:, 0, 4:7, 4:7] = 0.8  # a small red square on a dark grey background
    fg = foreground(frames)
    assert fg[0, 0, 5, 5] == 1 and fg[0, 0, 0, 0] == 0 and fg[0, 0, 12, 12] == 0
    # With weight 0 the loss is the plain one; with weight 4 an error on the square costs more than
    # the same error on the background.
    on_ball, on_background = frames.clone(), frames.clone()
    on_ball[:, :, 5, 5] += 0.1
    on_background[:, :, 12, 12] += 0.1
    assert reconstruction_loss(on_ball, frames) == pytest.approx(reconstruction_loss(on_background, frames).item())
    assert reconstruction_loss(on_ball, frames, 4.0) > 2 * reconstruction_loss(on_background, frames, 4.0)


def test_the_help_names_every_shipped_stage():
    from vgpt.training.config import STAGES_DIR

    def words(command):  # the help as one line; click wraps lines after a hyphen too
        return re.sub(r"-\s+", "-", " ".join(CliRunner().invoke(command, ["--help"]).output.split()))

    text = words(train_main)
    stages = sorted(p.stem for p in STAGES_DIR.glob("*.json") if not p.stem.startswith("distill-"))
    assert "bundled-refine" in stages and f"shipped stage: {', '.join(stages)}." in text
    assert "shipped stage: distill-consistency, distill-self-forcing." in words(distill_main)  # its own ones


def _codec_args(videos, out, *extra):
    return ["--data", str(videos), "--out", str(out), "--steps", "6", "--batch-size", "2", "--size", "32",
            "--eval-count", "2", "--checkpoint-every", "2", "--no-progress", *extra]  # fmt: skip


def test_an_interrupted_codec_run_resumes_to_the_weights_of_the_uninterrupted_one(videos, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert CliRunner().invoke(train_codec_main, _codec_args(videos, straight)).exit_code == 0
    # The same run killed in step 5, after the checkpoint of step 4 (which drew the batches of steps 1-4).
    import vgpt.training.codec as codec_training

    loss, calls = codec_training.reconstruction_loss, []

    def dies_in_step_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return loss(*args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(codec_training, "reconstruction_loss", dies_in_step_5)
    assert CliRunner().invoke(train_codec_main, _codec_args(videos, out)).exit_code != 0
    monkeypatch.setattr(codec_training, "reconstruction_loss", loss)
    root = codec_training.checkpoints_dir(out)
    assert (root / "latest").read_text().strip() == "step-0000004" and not out.exists()
    # A fresh run into it is refused (it would throw the run away), and so is a resume with other settings.
    result = CliRunner().invoke(train_codec_main, _codec_args(videos, out))
    assert result.exit_code == 1 and "--resume auto" in result.output, result.output
    result = CliRunner().invoke(train_codec_main, _codec_args(videos, out, "--resume", "auto", "--lr", "0.002"))
    assert result.exit_code == 1 and "lr 0.001 (now 0.002)" in result.output, result.output
    result = CliRunner().invoke(train_codec_main, _codec_args(videos, out, "--resume", "auto"))
    assert result.exit_code == 0 and "round trip keeps" in result.output, result.output
    # Exact: every weight and the scaling factor as the uninterrupted run has them; the checkpoints are gone.
    a, b = LightCodec.load(straight), LightCodec.load(out)
    assert a.scaling_factor == b.scaling_factor
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not root.exists()
    # Resumed again after it finished: nothing to do, the codec untouched.
    before = (out / "manifest.json").read_bytes()
    result = CliRunner().invoke(train_codec_main, _codec_args(videos, out, "--resume", "auto"))
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
    assert (out / "manifest.json").read_bytes() == before


def test_codec_training_reports_the_round_trip_as_vgpt_eval_scores_it(videos, tmp_path):
    from tests.conftest import random_model
    from vgpt.checkpoint import save_checkpoint
    from vgpt.config import get_preset

    out = tmp_path / "codec"
    assert CliRunner().invoke(train_codec_main, _codec_args(videos, out, "--size", "64")).exit_code == 0
    trip = json.loads((out / "manifest.json").read_text())["extra"]["round_trip"]
    assert len(trip["presence_by_horizon"]) == 8 and trip["scored"] > 0
    # vgpt-eval's codec round trip at 4 observed frames and 2 clips of 4, on the same 2 held-out scenes.
    save_checkpoint(random_model(get_preset("tiny")), tmp_path / "model")
    report = tmp_path / "eval.json"
    args = ["--checkpoint", str(tmp_path / "model"), "--codec", str(out), "--count", "2", "--layout", "4,4",
            "--num-clips", "2", "--steps", "1", "--json", str(report), "--no-progress"]  # fmt: skip
    assert CliRunner().invoke(eval_main, args).exit_code == 0
    expected = json.loads(report.read_text())["codec_round_trip"]
    # The same frames through the same codec, encoded per scene here and in batches there: the decoded
    # pixels agree to float32 round-off, far inside the presence rule's tolerances.
    assert trip["presence_by_horizon"] == expected["presence_by_horizon"] and trip["scored"] == expected["scored"]
    assert trip["colour_error"] == pytest.approx(expected["colour_error"], abs=1e-5)
