// Every decision of the TensorRT backend that needs no TensorRT (the C++ side of engines/settings.py,
// buffers.py and manifest.py): reading a vgpt-build folder's engines.json, refusing engines of another
// TensorRT version, another GPU or changed plan files, the device buffers a stream allocates once, and
// which buffers each of the two denoising-step contexts binds. Compiled and tested in every build;
// trt_model.cpp only carries it out.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace vgpt {

inline constexpr const char* kEngineManifest = "engines.json";
inline constexpr const char* kEngineFormat = "vgpt-tensorrt-engines";

struct PlanFile {
    std::string file;  // a plain name inside the folder (untrusted.hpp), checked when engines.json is read
    uint64_t bytes = 0;
    std::string sha256;
};

// engines.json (engines/manifest.py engine_manifest, written by engines/build.py).
struct EngineManifest {
    std::string folder;            // where engines.json and the plans are
    std::string tensorrt_version;  // trt.__version__ at build time, e.g. "10.7.0" or "10.7.0.post1"
    std::string gpu_name;
    int capability_major = 0, capability_minor = 0;
    std::string layout;   // the bundle layout the engines were built for
    std::string bundle;   // the export bundle's folder (absolute)
    std::string precision;
    int steps = 0;        // sampler steps, as in the bundle
    std::map<std::string, PlanFile> plans;                 // graph -> plan file
    std::map<std::string, std::string> source_sha256;      // graph -> sha256 of the ONNX file it was built from
};

// The folder of `path`: an engines folder, or a .plan file inside one. Throws VGPT_NOT_FOUND when it
// has no engines.json.
std::string find_engines(const std::string& path);

// Reads folder/engines.json; throws VGPT_BAD_BUNDLE for a malformed one or a missing stream graph.
EngineManifest read_engine_manifest(const std::string& folder);

// What this process runs on: the TensorRT library's version and the CUDA device's name and
// compute capability (cudaGetDeviceProperties: the name torch.cuda.get_device_name reports).
struct TensorRTHost {
    int major = 0, minor = 0, patch = 0;
    std::string gpu_name;
    int capability_major = 0, capability_minor = 0;
};

// From getInferLibVersion()'s integer (TensorRT 10 and later: major * 10000 + minor * 100 + patch) and
// the device's properties.
TensorRTHost tensorrt_host(int32_t lib_version, const std::string& gpu_name, int capability_major,
                           int capability_minor);

// Plans are neither portable across TensorRT versions nor across GPU models: refuse both, as
// engines/manifest.py check_engine_manifest does. The versions agree when major.minor.patch agree (a
// recorded build number or ".postN" suffix is not compared: the library reports neither).
void check_engine_host(const EngineManifest& m, const TensorRTHost& host);

// Every plan present with its recorded size and, when verify_hashes, its sha256 (engines/manifest.py
// check_plan_files); and every stream graph built from the ONNX file the bundle holds now.
void check_plan_files(const EngineManifest& m, bool verify_hashes);
void check_sources(const EngineManifest& m, const Manifest& bundle);

// What vgpt_model_load checks of an engines folder (trt_model.cpp), in order, before TensorRT reads a plan:
// engines.json, that it was built by this TensorRT for this GPU (host), every plan's size and (verify_hashes)
// sha256, the bundle it was built from (bundle_root: where it is now; empty: the folder engines.json names),
// its steps, and that the bundle's stream graphs are those the engines were built from. The same checks as
// engines/manifest.py check_engine_folder; tests/cpp_runtime/tamper.py's engine cases hold both to them.
struct CheckedEngines {
    EngineManifest engines;
    Manifest bundle;
};
CheckedEngines check_engine_folder(const std::string& path, const TensorRTHost& host, bool verify_hashes,
                                   const std::string& bundle_root = "");

// One device allocation and the (graph, tensor) pairs bound to it, as the bundle's binding plan binds them.
struct DeviceBuffer {
    std::string name;
    size_t bytes = 0;
    std::vector<std::pair<std::string, std::string>> bindings;  // the encoder's, prefill's and decoder's
};

// The buffers a backend writes from and reads to the host (engines/buffers.py StreamIo).
struct StreamIo {
    std::string frame, latent, history, noise, step, result, clip, frames;  // result: the clip after S steps
};

struct DeviceBuffers {
    std::vector<DeviceBuffer> buffers;
    // The denoising step's two binding sets: even steps read set 0 and write set 1, odd steps the
    // reverse, so the S steps (and a CUDA graph of them) never copy z or the step index.
    std::map<std::string, std::string> steps[2];  // tensor -> buffer name
    StreamIo io;
    const DeviceBuffer& buffer(const std::string& name) const;  // throws VGPT_INTERNAL
    size_t total_bytes() const;
};

// A TensorRT stream's buffers by the bundle's binding plan (engines/buffers.py engine_buffers): those of the
// phases TensorRT runs (encode, prefill, denoise, decode), checked by bundle_dims' check_plan.
DeviceBuffers device_buffers(const Manifest& bundle);

// The activation block every context of a stream shares (they run one after another on its CUDA stream,
// under the stream's lock; engines/buffers.py shares one among all but the encoder, which Python runs
// on its own stream): the largest engine's need (getDeviceMemorySizeV2), rounded up to TensorRT's
// 256-byte alignment, never zero bytes. Throws VGPT_BAD_BUNDLE for a negative size.
size_t activation_bytes(const std::vector<int64_t>& sizes);

// An engine's I/O tensor (its dtype as numpy names it, its shape) against the bundle's spec of it.
void check_engine_tensor(const std::string& graph, const TensorSpec& spec, const std::string& dtype,
                         const std::vector<int64_t>& shape);

}  // namespace vgpt
