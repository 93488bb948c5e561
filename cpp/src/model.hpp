// A loaded model: the bundle's manifest and layout, and whatever the backend loads once (ONNX Runtime
// sessions, TensorRT engines). Immutable once loaded, so any number of streams (and threads) share it;
// each stream gets its own Engine: its buffers, bindings or execution contexts.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "vgpt/vgpt.h"

namespace vgpt {

struct Options {
    vgpt_backend backend = VGPT_BACKEND_ONNXRUNTIME;
    int intra_op_threads = 0;
    bool allow_spinning = false;
    std::string ort_library;
    std::string layout;
    bool verify_hashes = true;
    std::vector<std::string> trusted_keys;  // PEM public key files: load only bundles signed by one
};

// The caller's options (any struct_size up to ours) over the defaults; throws VGPT_INVALID_ARGUMENT.
Options read_options(const vgpt_model_options* options);

struct Dims {  // the layout, in the letters of docs/style.md
    int M, G, H, W, C, h, w, S;
    size_t latent() const { return size_t(C) * h * w; }  // floats per latent frame
    size_t pixels() const { return size_t(H) * W; }
};

// The layout of a bundle's manifest, checked against the tensors a stream relies on (shapes and
// dtypes of every graph's inputs and outputs), then its binding plan (check_plan); throws VGPT_BAD_BUNDLE.
Dims bundle_dims(const Manifest& manifest);

std::string shape_text(const std::vector<int64_t>& shape);  // "[1, 4, 8, 8]"

inline double seconds_now() {  // the steady clock, for the timing profile
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One stream's buffers and graph calls on one backend (the C++ side of runtime/backends/base.py).
// Returned pointers are host memory valid until the next call. `inside` accumulates the seconds spent
// inside the backend's run calls: what is left of a predict call is host work (the bench's figure).
class Engine {
public:
    virtual ~Engine() = default;
    virtual float* frame() = 0;                            // the encoder's input [1, 3, H, W], filled in place
    virtual const float* encode() = 0;                     // frame() -> latents [1, C, h, w]
    virtual void prefill(const float* history) = 0;        // [1, M, C, h, w] -> the KV cache
    virtual const float* denoise(const float* noise) = 0;  // [1, G, C, h, w] -> the clip after S steps
    virtual const float* decode(const float* clip) = 0;    // [G, C, h, w] -> frames [G, 3, H, W]
    // GPDiT's exact rolling window (a bundle with frame.onnx and ring.onnx; ring.cpp): push runs one observed
    // frame's latents [1, 1, C, h, w] alone into the ring slot of the oldest, read_window writes the newest M
    // frames, each at its window position, into the KV cache the denoising steps read.
    virtual bool exact_rolling() const { return false; }
    virtual void push(const float* latents);
    virtual void read_window();
    double inside = 0;
};

class Model {
public:
    virtual ~Model() = default;
    // The backend of options.backend: path is a bundle (ONNX Runtime) or an engines folder (TensorRT).
    static std::shared_ptr<const Model> load(const std::string& path, const Options& options);

    const Manifest& manifest() const { return manifest_; }
    const Dims& dims() const { return dims_; }
    virtual std::unique_ptr<Engine> engine() const = 0;  // a new stream's

protected:
    Manifest manifest_;
    Dims dims_{};
};

std::shared_ptr<const Model> load_onnxruntime(const std::string& path, const Options& options);  // ort_model.cpp
#ifdef VGPT_WITH_TENSORRT
std::shared_ptr<const Model> load_tensorrt(const std::string& path, const Options& options);  // trt_model.cpp
#endif

}  // namespace vgpt
