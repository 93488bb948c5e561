// A loaded bundle: the manifest, ONNX Runtime and one session per graph. Immutable once loaded, so
// any number of streams (and threads) share it; ONNX Runtime sessions are safe to run concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "manifest.hpp"
#include "ort.hpp"
#include "vgpt/vgpt.h"

namespace vgpt {

struct Options {
    vgpt_backend backend = VGPT_BACKEND_ONNXRUNTIME;
    int intra_op_threads = 0;
    bool allow_spinning = false;
    std::string ort_library;
    std::string layout;
    bool verify_hashes = true;
};

// The caller's options (any struct_size up to ours) over the defaults; throws VGPT_INVALID_ARGUMENT.
Options read_options(const vgpt_model_options* options);

struct Dims {  // the layout, in the letters of docs/style.md
    int M, G, H, W, C, h, w, S;
    size_t latent() const { return size_t(C) * h * w; }  // floats per latent frame
    size_t pixels() const { return size_t(H) * W; }
};

class Model {
public:
    static std::shared_ptr<const Model> load(const std::string& path, const Options& options);

    const OrtApi* api() const { return ort_->api; }
    const Manifest& manifest() const { return manifest_; }
    const Dims& dims() const { return dims_; }
    OrtSession* session(const std::string& graph) const { return sessions_.at(graph).get(); }
    const GraphSpec& spec(const std::string& graph) const { return manifest_.graphs.at(graph); }
    const OrtMemoryInfo* cpu() const { return cpu_.get(); }

private:
    Model() = default;
    // Declaration order is destruction order reversed: sessions go before the environment, and the
    // library handle (never unloaded) is held for all of them.
    std::shared_ptr<const OrtLibrary> ort_;
    Manifest manifest_;
    Dims dims_{};
    OrtOwner<OrtEnv> env_;
    OrtOwner<OrtMemoryInfo> cpu_;
    std::map<std::string, OrtOwner<OrtSession>> sessions_;
};

ONNXTensorElementDataType element_type(const TensorSpec& t);  // throws VGPT_BAD_BUNDLE

}  // namespace vgpt
