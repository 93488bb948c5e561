import importlib
import subprocess
import sys


def test_subpackages_are_mapped():
    for name in ("export", "calibration", "engines", "runtime", "training"):
        module = importlib.import_module(f"vgpt.{name}")
        assert module.__file__.replace("\\", "/").endswith(f"/{name}/__init__.py")


def _loaded_by(imports: str, libraries: tuple[str, ...]) -> str:
    """Which of `libraries` a fresh interpreter has in sys.modules after `import sys, <imports>`."""
    code = f"import sys, {imports}; print(sorted(m for m in {libraries!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_vgpt_pulls_no_heavy_deployment_libraries():
    heavy = ("onnx", "onnxruntime", "tensorrt", "modelopt", "diffusers", "transformers")
    assert _loaded_by("vgpt, vgpt.checkpoint, vgpt.predictors, vgpt.codecs, vgpt.cli, vgpt.cli.predict", heavy) == "[]"


def test_bag_and_viewer_libraries_are_imported_only_when_used():
    robotics = ("rosbags", "mcap", "mcap_ros2", "foxglove", "websockets", "tkinter")
    assert (
        _loaded_by("vgpt.runtime.run, vgpt.cli.run, vgpt.cli.eval, vgpt.recordings, vgpt.evaluation", robotics) == "[]"
    )


def test_the_runtime_and_vgpt_run_never_import_training():
    code = "import sys, vgpt.runtime, vgpt.runtime.run, vgpt.cli.run; print('vgpt.training' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


COMMANDS = {
    "vgpt-run": "vgpt.cli.run:run_main",
    "vgpt-bench": "vgpt.cli.bench:bench_main",
    "vgpt-export": "vgpt.cli.export:export_main",
    "vgpt-build": "vgpt.cli.build:build_main",
    "vgpt-train": "vgpt.cli.train:train_main",
    "vgpt-train-codec": "vgpt.cli.train:train_codec_main",
    "vgpt-distill": "vgpt.cli.train:distill_main",
    "vgpt-eval": "vgpt.cli.eval:eval_main",
    "vgpt-synth": "vgpt.cli.train:synth_main",
    "vgpt-predict": "vgpt.cli.predict:predict_main",
    "vgpt-cache": "vgpt.cli.cache:cache_main",
}


def test_every_command_is_declared_with_help_and_version():
    from pathlib import Path

    import tomllib
    from click.testing import CliRunner

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == COMMANDS
    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        for flag in ("--help", "-h"):
            result = CliRunner().invoke(command, [flag])
            assert result.exit_code == 0 and "Usage:" in result.output, (name, flag, result.output)
        result = CliRunner().invoke(command, ["--version"])
        assert result.exit_code == 0 and result.output.strip() == "vgpt 0.1.0", (name, result.output)


def test_help_does_not_import_torch():
    # `--help` answered in 3.5 s when every command imported torch at module level; a command module
    # may import only click and light vgpt modules (torch loads inside the command).
    modules = sorted({target.split(":")[0] for target in COMMANDS.values()})
    heavy = ("torch", "onnx", "onnxruntime")
    code = f"import sys; [__import__(m) for m in {modules!r}]; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
