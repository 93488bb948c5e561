#!/usr/bin/env bash
# Dependencies of the C/C++ runtime on Debian bookworm (run as root):
#   - libgtest-dev, nlohmann-json3-dev and libssl-dev (OpenSSL's libcrypto: bundle signatures) from the
#     system's own apt sources;
#   - the ONNX Runtime C/C++ headers: bookworm has no libonnxruntime-dev, so trixie's package (1.21) is
#     downloaded under a private apt configuration (the system's sources are never touched) and only
#     unpacked into BUILD/deps/onnxruntime. Its libonnxruntime.so needs a newer glibc and is not used:
#     at run time the library is dlopen'ed from the onnxruntime Python wheel.
#   - libopencv-dev only with --with-opencv (for examples/cpp/predict_video.cpp).
# Usage: scripts/cpp_deps.sh [--build-dir build] [--with-opencv]
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
opencv=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) build="$2"; shift 2 ;;
        --with-opencv) opencv=1; shift ;;
        *) echo "cpp_deps.sh: unknown argument $1 (use --build-dir DIR, --with-opencv)" >&2; exit 2 ;;
    esac
done

packages=(libgtest-dev nlohmann-json3-dev libssl-dev)
[[ $opencv == 1 ]] && packages+=(libopencv-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

deps="$build/deps/onnxruntime"
if [[ -f "$deps/usr/include/onnxruntime/onnxruntime_c_api.h" ]]; then
    echo "cpp_deps.sh: ONNX Runtime headers already in $deps"
    exit 0
fi

# The Debian mirror the system uses (deb822 .sources or one-line sources.list), for the trixie suite.
mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
if [[ -z "$mirror" ]]; then
    mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
fi
if [[ -z "$mirror" ]]; then
    echo "cpp_deps.sh: no Debian mirror found in the system's apt sources; unpack libonnxruntime-dev's" \
        "headers yourself and pass -DVGPT_ORT_INCLUDE_DIR to cmake (docs/cpp.md)" >&2
    exit 1
fi

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State=$apt_dir/state" -o "Dir::Cache=$apt_dir/cache" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" update -qq
mkdir -p "$build/deps"
(cd "$apt_dir" && apt-get "${opts[@]}" download libonnxruntime-dev)
deb=$(ls "$apt_dir"/libonnxruntime-dev_*.deb)
rm -rf "$deps.tmp" && mkdir -p "$deps.tmp"
dpkg-deb -x "$deb" "$deps.tmp"
mv "$deps.tmp" "$deps"
echo "cpp_deps.sh: $(basename "$deb") headers in $deps/usr/include/onnxruntime"
