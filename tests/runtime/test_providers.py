"""ONNX Runtime execution providers: names, the refusal of a missing one (never a silent CPU fall back),
and where the bound buffers live. The GPU path itself runs in scripts/gpu_check.sh."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from vgpt.cli.run import run_main
from vgpt.config import ConfigError
from vgpt.errors import VgptError
from vgpt.runtime.backends.ort_backend import (
    PROVIDERS,
    Placement,
    ProviderError,
    _Buffer,
    check_available,
    check_started,
    provider_names,
)
from vgpt.runtime.config import RunConfig
from vgpt.runtime.predictor import load_predictor

CPU, CUDA, TRT = PROVIDERS["cpu"], PROVIDERS["cuda"], PROVIDERS["tensorrt"]


def test_provider_names_map_short_names_and_keep_the_cpu_behind_a_gpu():
    assert provider_names(None) == [CPU]
    assert provider_names(["cpu"]) == [CPU]
    # The CPU provider follows a GPU one for the few shape nodes the GPU lacks; buffers stay on the device.
    assert provider_names(["cuda"]) == [CUDA, CPU]
    assert provider_names(["tensorrt", "cuda"]) == [TRT, CUDA, CPU]
    assert provider_names([CUDA, "cpu"]) == [CUDA, CPU]
    with pytest.raises(ProviderError, match="'rocm': choose one of"):
        provider_names(["rocm"])


def test_a_missing_provider_is_an_error_that_says_what_to_install():
    with pytest.raises(ProviderError, match=r"no CUDAExecutionProvider .*onnxruntime-gpu.*--provider cpu"):
        check_available([CUDA, CPU], [CPU])
    assert issubclass(ProviderError, VgptError)
    check_available([CPU], [CPU, "AzureExecutionProvider"])


def test_a_provider_that_did_not_start_is_refused_not_replaced_by_the_cpu():
    with pytest.raises(ProviderError, match="could not start CUDAExecutionProvider"):
        check_started([CUDA, CPU], [CPU], "denoise.onnx")
    check_started([CUDA, CPU], [CUDA, CPU], "denoise.onnx")


def test_buffers_live_on_the_device_of_the_first_provider():
    assert Placement.for_providers([CPU]) == Placement("cpu", 0)
    assert Placement.for_providers([CUDA, CPU]) == Placement("cuda", 0)
    assert Placement.for_providers([TRT, CUDA, CPU], device_id=1) == Placement("cuda", 1)
    assert Placement("cpu").on_host and not Placement("cuda").on_host


def test_a_host_buffer_is_the_array_onnxruntime_reads():
    buffer = _Buffer((2, 3), np.float32, Placement("cpu"))
    buffer.write(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(buffer.value.numpy(), np.arange(6).reshape(2, 3))
    out = buffer.read()
    out[0, 0] = 99  # a copy: the caller cannot write into a bound buffer
    assert buffer.host[0, 0] == 0


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(), reason="has CUDA")
def test_load_predictor_with_a_missing_provider_fails_before_running(model_folder):
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        load_predictor(str(model_folder), providers=["cuda"])
    with pytest.raises(VgptError, match="the torch backend takes none"):
        load_predictor(str(model_folder), backend="torch", providers=["cpu"])
    assert load_predictor(str(model_folder), providers=["cpu"]).backend.providers == [CPU]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(), reason="has CUDA")
def test_vgpt_run_provider_cuda_without_cuda_is_one_error_line(model_folder, clip_video, tmp_path):
    args = ["--input", str(clip_video), "--engine", str(model_folder), "--output", str(tmp_path / "o.mp4"),
            "--provider", "cuda", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(run_main, args)
    assert result.exit_code == 1
    assert re.search(r"Error: ONNX Runtime here has no CUDAExecutionProvider", result.output), result.output


def test_run_config_checks_the_provider():
    with pytest.raises(ConfigError, match="provider='opencl': choose one of"):
        RunConfig(input="x", provider="opencl")
    with pytest.raises(ConfigError, match="the torch backend takes none"):
        RunConfig(input="x", provider="cpu", backend="torch")
