#!/usr/bin/env bash
# The TensorRT check on a machine with an NVIDIA GPU, CUDA, a CUDA build of torch and TensorRT
# (see the README's TensorRT section): builds fp16, fp8 (where supported) and int8 engines of the
# bundled model, compares them with ONNX Runtime through Polygraphy, runs the TensorRT backend against
# the ONNX Runtime backend and prints latency. Exits non-zero when a comparison fails.
set -euo pipefail
out="${1:-gpu-check}"
python3 -c "import tensorrt, torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print('TensorRT', tensorrt.__version__)"
python3 -m pytest -q tests/engines
python3 -m vgpt.engines.gpu_check --out "$out"
