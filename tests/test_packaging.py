import importlib
import subprocess
import sys


def test_subpackages_are_mapped():
    for name in ("export", "calibration", "engines", "runtime", "training"):
        module = importlib.import_module(f"vgpt.{name}")
        assert module.__file__.replace("\\", "/").endswith(f"/{name}/__init__.py")


def test_importing_vgpt_pulls_no_heavy_deployment_libraries():
    code = (
        "import sys, vgpt, vgpt.checkpoint, vgpt.predictors, vgpt.codecs, vgpt.cli; "
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'tensorrt', 'modelopt', 'diffusers', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_runtime_never_imports_training():
    code = "import sys, vgpt.runtime, vgpt.runtime.run, vgpt.runtime.cli; print('vgpt.training' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
