#!/usr/bin/env bash
# Configure, build and test the C/C++ runtime in one command (docs/cpp.md):
#   scripts/cpp_test.sh                 # build/ : RelWithDebInfo, then ctest
#   scripts/cpp_test.sh --sanitize      # build/asan/ : AddressSanitizer + UBSan (+ LeakSanitizer), then ctest
#   scripts/cpp_test.sh --sanitize --reuse-fixtures   # the same, copying build/cpp_fixtures (CI, after the plain run)
#   scripts/cpp_test.sh --tensorrt      # build/trt/ : with the TensorRT backend (needs CUDA and TensorRT; gpu_check.sh)
# Fetches the dependencies first (scripts/cpp_deps.sh, root) when they are missing. Builds with
# $VGPT_JOBS parallel jobs (default 2). The ctest run starts by writing the parity fixtures with the
# Python runtime (python3 -m tests.cpp_runtime.make_fixtures), so vgpt must be installed for python3.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
sanitize=OFF
tensorrt=OFF
reuse=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sanitize) sanitize=ON; build=build/asan; shift ;;
        --tensorrt) tensorrt=ON; build=build/trt; shift ;;
        --reuse-fixtures) reuse="$PWD/build/cpp_fixtures"; shift ;;
        --build-dir) build="$2"; shift 2 ;;
        *) echo "cpp_test.sh: unknown argument $1 (use --sanitize, --tensorrt, --reuse-fixtures, --build-dir DIR)" >&2; exit 2 ;;
    esac
done
jobs=${VGPT_JOBS:-2}

# The ONNX Runtime headers live under build/deps whatever the build folder (one download).
ort_include=build/deps/onnxruntime/usr/include/onnxruntime
if [[ ! -f $ort_include/onnxruntime_c_api.h ]] || ! dpkg-query -W -f='${Status}\n' libgtest-dev nlohmann-json3-dev \
        libssl-dev 2>/dev/null | grep -c "install ok installed" | grep -q '^3$'; then
    scripts/cpp_deps.sh --build-dir build
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGPT_SANITIZE=$sanitize -DVGPT_WITH_TENSORRT=$tensorrt \
    -DVGPT_REUSE_FIXTURES="$reuse" \
    -DVGPT_ORT_INCLUDE_DIR="$PWD/$ort_include"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure
