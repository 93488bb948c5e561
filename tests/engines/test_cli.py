"""vgpt-build as a user types it: the user's own mistakes (no such bundle, a precision the bundle cannot
give) are reported before what this machine lacks (TensorRT, a GPU)."""

import sys

import pytest
from click.testing import CliRunner

from vgpt.cli.build import build_main

pytest.importorskip("onnxruntime")


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # whether or not TensorRT is installed here


def _build(*args):
    return CliRunner().invoke(build_main, list(args))


def test_a_missing_bundle_is_reported_before_a_missing_tensorrt(no_tensorrt, tmp_path):
    result = _build("--bundle", str(tmp_path / "no-bundle"), "--out", str(tmp_path / "engines"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no-bundle" in result.output and "TensorRT is not installed" not in result.output


def test_a_precision_the_bundle_cannot_give_is_reported_before_a_missing_tensorrt(no_tensorrt, fp32_bundle, tmp_path):
    result = _build("--bundle", str(fp32_bundle), "--out", str(tmp_path / "engines"), "--precision", "fp8")
    assert result.exit_code == 1 and "fp8 engines need a quantized bundle: vgpt-export --fp8" in result.output
    result = _build("--bundle", str(fp32_bundle), "--out", str(tmp_path / "engines"))
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output
    assert not (tmp_path / "engines").exists()
