import json
import shutil
import subprocess

import onnx
import pytest
from click.testing import CliRunner

from tests.conftest import random_model, write_released
from vgpt.checkpoint import save_checkpoint
from vgpt.cli.export import export_main
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.export.contract import BundleError
from vgpt.export.manifest import load_bundle


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = random_model(get_preset("tiny"))
    save_checkpoint(model, root / "model")
    LightCodec().eval().save(root / "codec")
    return root


def test_export_cli_and_check_only(tiny_files, tmp_path):
    out = tmp_path / "bundle"
    args = ["--checkpoint", str(tiny_files / "model"), "--codec", str(tiny_files / "codec"), "--out", str(out),
            "--layout", "2,2,32x32px", "--steps", "3", "--guidance", "2", "--opset", "18",
            "--kv-attention", "two_part"]  # fmt: skip
    result = CliRunner().invoke(export_main, args)
    assert result.exit_code == 0, result.output
    assert "m2-g2-4x4/denoise.onnx:" in result.output and "TensorRT >= 10.0" in result.output
    manifest = load_bundle(out).manifest
    assert manifest.sampler.steps == 3 and manifest.opset == 18
    # The cache attended in two parts: the step computes its own softmax (opset 18's form uses Softmax).
    denoise = {n.op_type for n in onnx.load(str(out / "m2-g2-4x4" / "denoise.onnx")).graph.node}
    assert {"Exp", "ReduceMax"} <= denoise
    check = CliRunner().invoke(export_main, ["--check-only", str(out)])
    assert check.exit_code == 0 and check.output.count("ready for TensorRT") == 5  # five graphs
    # Polygraphy's own CLI accepts every graph.
    if shutil.which("polygraphy") is None:
        pytest.skip("polygraphy CLI not on PATH")
    for graph in sorted(out.rglob("*.onnx")):
        for cmd in (["inspect", "model", str(graph)], ["run", str(graph), "--onnxrt"]):
            run = subprocess.run(["polygraphy", *cmd], capture_output=True, text=True)
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    again = CliRunner().invoke(export_main, args)
    assert again.exit_code == 1 and "exists and is not empty" in again.output


def test_export_cli_errors(tiny_files, tmp_path):
    common = ["--codec", str(tiny_files / "codec"), "--out", str(tmp_path / "b")]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.npz").write_bytes(b"")
    result = CliRunner().invoke(export_main, ["--checkpoint", str(tmp_path / "junk"), *common])
    assert result.exit_code == 1 and "unknown checkpoint format" in result.output
    result = CliRunner().invoke(export_main, ["--checkpoint", str(tiny_files / "model"), *common,
                                              "--layout", "2,2,40x40px"])  # fmt: skip
    assert result.exit_code == 1 and "frame height=40 px is not a multiple of 16" in result.output
    result = CliRunner().invoke(export_main, ["--checkpoint", str(tiny_files / "model"), *common,
                                              "--layout", "2,2,4x70"])  # fmt: skip
    assert result.exit_code == 1 and "beyond the 32x32 patch grid" in result.output
    result = CliRunner().invoke(export_main, ["--checkpoint", str(tiny_files / "model"), *common, "--layout", "x"])
    assert result.exit_code == 2 and "expected M,G,HxW" in result.output


def test_export_cli_takes_a_released_checkpoint(tiny_files, tmp_path):
    released = write_released(random_model(get_preset("tiny")), tmp_path / "released")
    # No vae/ beside it and no --codec: the bundled codec, with a note (it makes 4-channel latents, as tiny).
    result = CliRunner().invoke(export_main, ["--checkpoint", str(released), "--out", str(tmp_path / "a"),
                                              "--layout", "1,1,2x2", "--steps", "2", "--no-verify"])  # fmt: skip
    assert result.exit_code == 0, result.output
    from vgpt.default_model import default_model

    codec = json.loads((tmp_path / "a" / "manifest.json").read_text())["sources"]["codec"]
    assert codec == str(default_model().codec_dir)
    result = CliRunner().invoke(export_main, ["--checkpoint", str(released), "--codec", str(tiny_files / "codec"),
                                              "--out", str(tmp_path / "b"), "--layout", "1,1,2x2", "--steps", "2",
                                              "--no-verify"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["verified"] is False


def test_a_verification_failure_is_one_error_line_and_leaves_no_bundle(tiny_files, tmp_path, monkeypatch):
    import vgpt.export.bundle as bundle_module
    from vgpt.export.verify import OutputError

    def disagreeing(path, module, spec, feeds, atol, rtol, basic_optimization=False):
        return [OutputError(t.name, 0.3, 2.0, atol, rtol, 0.3 / atol) for t in spec.outputs]

    monkeypatch.setattr(bundle_module, "compare_with_eager", disagreeing)
    out = tmp_path / "bundle"
    args = ["--checkpoint", str(tiny_files / "model"), "--codec", str(tiny_files / "codec"), "--out", str(out),
            "--layout", "2,2,32x32px", "--steps", "2"]  # fmt: skip
    result = CliRunner().invoke(export_main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    # The graph, the output, the measured and allowed error, and what to try.
    assert "m2-g2-4x4/encoder.onnx" in line and "latents: max abs 0.3" in line
    assert "|ort - eager| <= 0.0001 + 0.001 * |eager|" in line and "--no-verify" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--steps", "0"], "--steps"), (["--guidance", "0.5"], "--guidance"), (["--calib-count", "0"], "--calib-count"),
     (["--calib-seed", "-1"], "--calib-seed"), (["--shift", "0"], "--shift")],
)  # fmt: skip
def test_export_options_are_validated(args, message, tmp_path):
    result = CliRunner().invoke(export_main, ["--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2 and message in result.output


def test_a_training_run_exports_with_the_default_codec(tiny_files, tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step-0000002"
    shutil.copytree(tiny_files / "model", step / "model")
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-0000002\n")
    out = tmp_path / "bundle"
    result = CliRunner().invoke(export_main, ["--checkpoint", str(tmp_path / "run"), "--out", str(out), "--layout",
                                              "2,2,32x32px", "--steps", "2", "--no-verify"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["sources"]["checkpoint"] == str(step / "model")


def _export_process(tiny_files, out):
    """vgpt-export as a separate process (signals reach it as they would from a supervisor)."""
    import sys

    code = "from vgpt.cli.export import export_main; export_main()"
    args = ["--checkpoint", str(tiny_files / "model"), "--codec", str(tiny_files / "codec"), "--out", str(out),
            "--layout", "2,2,32x32px", "--steps", "2", "--no-progress"]  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _wait_for_export(process, folder, name, others=()):
    """Until the export has its temporary folder (it is writing graphs); those in `others` are not its."""
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        staged = [p for p in folder.glob(f".{name}.*.tmp") if p not in others and any(p.iterdir())]
        if staged:
            return staged
        time.sleep(0.05)
    raise AssertionError(f"the export never started writing: {process.communicate()[0]}")


def test_sigterm_stops_an_export_cleanly_and_the_next_export_removes_what_sigkill_left(tiny_files, tmp_path):
    import signal

    out = tmp_path / "bundle"
    killed = _export_process(tiny_files, out)
    left = _wait_for_export(killed, tmp_path, "bundle")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert all(p.exists() for p in left), "SIGKILL leaves the temporary folder behind"
    stopped = _export_process(tiny_files, out)
    _wait_for_export(stopped, tmp_path, "bundle", others=left)
    assert not any(p.exists() for p in left), "the next export removed the dead one's temporary"
    stopped.send_signal(signal.SIGTERM)
    output = stopped.communicate(timeout=120)[0]
    assert stopped.returncode == 130, output
    assert "Interrupted: no bundle was written" in output and "Traceback" not in output
    assert list(tmp_path.iterdir()) == [], "nothing is left: no bundle, no temporary"


def test_an_export_onto_a_full_disk_is_one_error_and_leaves_nothing(tiny_files, small_disk):
    disk = small_disk(256)
    args = ["--checkpoint", str(tiny_files / "model"), "--codec", str(tiny_files / "codec"), "--out",
            str(disk / "bundle"), "--layout", "2,2,32x32px", "--steps", "2", "--no-verify"]  # fmt: skip
    result = CliRunner().invoke(export_main, args)
    assert result.exit_code == 1, result.output
    assert "No space left on device: free some space or write somewhere else" in result.output
    assert "Traceback" not in result.output and list(disk.iterdir()) == []


def test_signed_exports_load_only_with_their_key(tiny_files, tmp_path):
    """vgpt-export --new-signing-key / --sign, then load_model and vgpt-run with --trusted-key: the signed
    bundle loads, an unsigned one, one signed by another key and a checkpoint are refused."""
    pytest.importorskip("cryptography")
    from vgpt.cli.run import run_main
    from vgpt.runtime.predictor import load_model

    key = tmp_path / "ci-key.pem"
    made = CliRunner().invoke(export_main, ["--new-signing-key", str(key)])
    assert made.exit_code == 0 and "ci-key.pem.pub" in made.output, made.output
    assert key.stat().st_mode & 0o077 == 0, "the private key is readable by its owner only"
    again = CliRunner().invoke(export_main, ["--new-signing-key", str(key)])
    assert again.exit_code == 1 and "never overwritten" in again.output
    out = tmp_path / "signed"
    args = ["--checkpoint", str(tiny_files / "model"), "--codec", str(tiny_files / "codec"), "--layout",
            "2,2,32x32px", "--steps", "2", "--no-verify"]  # fmt: skip
    result = CliRunner().invoke(export_main, [*args, "--out", str(out), "--sign", str(key)])
    assert result.exit_code == 0 and "signed)" in result.output, result.output
    assert (out / "signature.json").is_file()
    public = f"{key}.pub"
    load_model(out, trusted_keys=[public])
    unsigned = tmp_path / "unsigned"
    assert CliRunner().invoke(export_main, [*args, "--out", str(unsigned)]).exit_code == 0
    with pytest.raises(BundleError, match="is not signed"):
        load_model(unsigned, trusted_keys=[public])
    with pytest.raises(BundleError, match="not a PEM public key"):
        load_model(out, trusted_keys=[key])  # the private key is not a trusted key
    from vgpt.synthetic import SceneConfig, render_video
    from vgpt.video import write_video

    video = str(tmp_path / "x.mp4")  # the input is opened before the model loads: it must be real
    write_video(video, render_video(0, SceneConfig(height=32, width=32, frames=8)))
    run = CliRunner().invoke(run_main, ["--input", video, "--engine", str(unsigned), "--trusted-key", public])
    assert run.exit_code == 1 and run.output.startswith("Error: ") and "is not signed" in run.output, run.output
    run = CliRunner().invoke(run_main, ["--input", video, "--engine", str(tiny_files / "model"),
                                        "--trusted-key", public])  # fmt: skip
    assert run.exit_code == 1 and "is a checkpoint" in run.output, run.output
