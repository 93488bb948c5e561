#include "model.hpp"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "error.hpp"
#include "frames.hpp"  // enum_value

namespace vgpt {
namespace {

// The tensors the stream relies on, against the layout: a manifest whose layout and graph specs
// disagree is refused here rather than read out of bounds later.
void check_layout(const Manifest& m, const Dims& d) {
    struct Want {
        const char* graph;
        const char* tensor;
        std::vector<int64_t> shape;
        const char* dtype;
    };
    const Want wants[] = {
        {kEncoder, "frames", {1, 3, d.H, d.W}, "float32"},
        {kEncoder, "latents", {1, d.C, d.h, d.w}, "float32"},
        {kPrefill, "history", {1, d.M, d.C, d.h, d.w}, "float32"},
        {kDenoise, "z", {1, d.G, d.C, d.h, d.w}, "float32"},
        {kDenoise, "z_next", {1, d.G, d.C, d.h, d.w}, "float32"},
        {kDenoise, "step", {1}, "int64"},
        {kDenoise, "step_next", {1}, "int64"},
        {kDecoder, "latents", {d.G, d.C, d.h, d.w}, "float32"},
        {kDecoder, "frames", {d.G, 3, d.H, d.W}, "float32"},
    };
    for (const Want& want : wants) {
        const TensorSpec& t = m.graphs.at(want.graph).tensor(want.tensor);
        if (t.shape != want.shape || t.dtype != want.dtype) {
            throw Error(VGPT_BAD_BUNDLE, m.root + ": the manifest gives " + want.graph + "'s '" + want.tensor +
                                             "' as " + t.dtype + " " + shape_text(t.shape) + ", its layout " +
                                             m.layout_name + " needs " + want.dtype + " " + shape_text(want.shape) +
                                             "; " + kRebuild);
        }
    }
    const TensorSpec& kv_in = m.graphs.at(kDenoise).tensor("kv_cache");
    const TensorSpec& kv_out = m.graphs.at(kPrefill).tensor("kv_cache");
    if (kv_in.shape != kv_out.shape || kv_in.dtype != kv_out.dtype) {
        throw Error(VGPT_BAD_BUNDLE, m.root + ": prefill's kv_cache " + kv_out.dtype + " " + shape_text(kv_out.shape) +
                                         " is not denoise's " + kv_in.dtype + " " + shape_text(kv_in.shape) + "; " +
                                         kRebuild);
    }
}

}  // namespace

namespace {
[[noreturn]] void no_ring() {
    throw Error(VGPT_UNSUPPORTED, "this backend or bundle has no exact rolling window (frame.onnx and ring.onnx, "
                                  "exported for GPDiT's lightweight mask)");
}
}  // namespace

void Engine::push(const float*) { no_ring(); }
void Engine::read_window() { no_ring(); }

std::string shape_text(const std::vector<int64_t>& shape) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << ']';
    return s.str();
}

Dims bundle_dims(const Manifest& man) {
    const TensorSpec& latents = man.graphs.at(kEncoder).tensor("latents");
    if (latents.shape.size() != 4) {
        throw Error(VGPT_BAD_BUNDLE, man.root + ": the encoder's latents are not [1, C, h, w]; " + kRebuild);
    }
    const Dims d = {man.layout.history_frames, man.layout.clip_frames, man.layout.height(), man.layout.width(),
                    int(latents.shape[1]),     man.layout.latent_height, man.layout.latent_width, man.steps};
    if (d.M < 1 || d.G < 1 || d.S < 1 || d.h < 1 || d.w < 1) {
        throw Error(VGPT_BAD_BUNDLE, man.root + ": layout " + man.layout_name + " or its sampler steps are not "
                                     "positive; " + std::string(kRebuild));
    }
    check_layout(man, d);
    check_plan(man.plan, man.graphs, d.M, man.root + "/" + kManifest + ": layout " + man.layout_name);
    return d;
}

Options read_options(const vgpt_model_options* given) {
    vgpt_model_options o;
    vgpt_model_options_init(&o);
    if (given) {
        if (given->struct_size < offsetof(vgpt_model_options, backend) + sizeof(o.backend)) {
            throw Error(VGPT_INVALID_ARGUMENT, "options->struct_size is " + std::to_string(given->struct_size) +
                                                   ": initialize the options with vgpt_model_options_init");
        }
        // An older caller's struct is a prefix of ours: take what it has, keep our defaults for the rest.
        std::memcpy(&o, given, std::min(given->struct_size, sizeof(o)));
    }
    Options out;
    const int backend = enum_value(o.backend);
    if (backend != VGPT_BACKEND_ONNXRUNTIME && backend != VGPT_BACKEND_TENSORRT) {
        throw Error(VGPT_INVALID_ARGUMENT, "options->backend " + std::to_string(backend) +
                                               ": use VGPT_BACKEND_ONNXRUNTIME or VGPT_BACKEND_TENSORRT");
    }
    out.backend = vgpt_backend(backend);
    if (o.intra_op_threads < 0) {
        throw Error(VGPT_INVALID_ARGUMENT, "options->intra_op_threads " + std::to_string(o.intra_op_threads) +
                                               ": use 0 (ONNX Runtime's choice) or a positive count");
    }
    out.intra_op_threads = o.intra_op_threads;
    out.allow_spinning = o.allow_spinning != 0;
    out.ort_library = o.ort_library ? o.ort_library : "";
    out.layout = o.layout ? o.layout : "";
    out.verify_hashes = o.verify_hashes != 0;
    if (o.num_trusted_keys > 0 && !o.trusted_keys) {
        throw Error(VGPT_INVALID_ARGUMENT, "options->trusted_keys is NULL but num_trusted_keys is " +
                                               std::to_string(o.num_trusted_keys));
    }
    for (size_t i = 0; i < o.num_trusted_keys; ++i) {
        if (!o.trusted_keys[i]) {
            throw Error(VGPT_INVALID_ARGUMENT, "options->trusted_keys[" + std::to_string(i) + "] is NULL");
        }
        out.trusted_keys.push_back(o.trusted_keys[i]);
    }
    return out;
}

std::shared_ptr<const Model> Model::load(const std::string& path, const Options& options) {
    if (options.backend == VGPT_BACKEND_TENSORRT) {
        if (!options.trusted_keys.empty()) {
            throw Error(VGPT_INVALID_ARGUMENT, "trusted keys check signed export bundles; an engines folder is built "
                                               "on its target and carries no signature: load the signed bundle "
                                               "with VGPT_BACKEND_ONNXRUNTIME");
        }
#ifdef VGPT_WITH_TENSORRT
        return load_tensorrt(path, options);
#else
        throw Error(VGPT_UNSUPPORTED, "this build of vgpt has no TensorRT backend: configure it with "
                                      "-DVGPT_WITH_TENSORRT=ON on a machine with TensorRT and CUDA");
#endif
    }
    return load_onnxruntime(path, options);
}

}  // namespace vgpt
