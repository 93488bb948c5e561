#!/usr/bin/env bash
# The TensorRT check on a machine with an NVIDIA GPU, CUDA, a CUDA build of torch and TensorRT 10.1+ or
# 11.x (see the README's TensorRT section): builds fp16, fp8 (where supported) and int8 engines of the
# bundled model, compares them with ONNX Runtime through Polygraphy, runs the TensorRT backend against
# the ONNX Runtime backend and prints latency; then builds the C++ runtime with its TensorRT backend and
# compares it with the C++ ONNX Runtime backend (docs/cpp.md). Exits non-zero when a comparison fails.
set -euo pipefail
out="${1:-gpu-check}"
python3 -c "import tensorrt, torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print('TensorRT', tensorrt.__version__)"
python3 -m pytest -q tests/engines
python3 -m vgpt.cli.gpu_check --out "$out"
# The C++ TensorRT backend: configure with -DVGPT_WITH_TENSORRT=ON, build, ctest (which writes the parity
# fixtures, the tiny bundle at the opset this TensorRT parses: 23 from 10.15, 18 before), then fp32 engines
# of the tiny fixture bundle and the C++ TensorRT-vs-ONNX-Runtime test on them. The plans are built by the
# Python wheel's TensorRT and refused by any other version, so libnvinfer and the headers CMake finds
# (TENSORRT_ROOT, or the system's libnvinfer-dev) must be that same TensorRT version.
echo "the C++ backend must link TensorRT $(python3 -c 'import tensorrt; print(tensorrt.__version__)') (TENSORRT_ROOT=${TENSORRT_ROOT:-system})"
scripts/cpp_test.sh --tensorrt
vgpt-build --bundle build/trt/cpp_fixtures/tiny-bundle --out "$out/cpp-engines" --precision fp32 --force
VGPT_FIXTURES=build/trt/cpp_fixtures VGPT_TRT_ENGINES="$out/cpp-engines" build/trt/cpp/tests/vgpt_trt_tests
# ONNX Runtime's CUDA and TensorRT execution providers (vgpt-run --provider): buffers on the device, same clip as the CPU.
python3 -m pytest -q tests/runtime/test_providers_gpu.py
