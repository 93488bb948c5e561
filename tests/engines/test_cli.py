"""vgpt-build as a user types it: the user's own mistakes (no such bundle, a precision the bundle cannot
give) are reported before what this machine lacks (TensorRT, a GPU)."""

import sys

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import random_model
from vgpt.codecs import LightCodec
from vgpt.config import get_preset
from vgpt.engines.cli import build_main
from vgpt.export.bundle import ExportConfig, export_bundle
from vgpt.layout import Layout
from vgpt.sampler import SamplerConfig

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory):
    model = random_model(get_preset("tiny"))
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bundle") / "fp32"
    config = ExportConfig(layouts=(Layout.for_model(model.config, 3, 2, 4, 4),), sampler=SamplerConfig(steps=2),
                          verify=False)  # fmt: skip
    export_bundle(model, LightCodec().eval(), out, config)
    return out


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
