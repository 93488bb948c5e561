#include "model.hpp"

#include "frames.hpp"  // enum_value

#include <algorithm>
#include <cstring>
#include <sstream>

namespace vgpt {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << ']';
    return s.str();
}

// The graph's own inputs or outputs against the manifest's: names, element types and static shapes.
void check_io(const OrtApi* api, OrtSession* session, const GraphSpec& spec, const std::string& path, bool inputs) {
    const char* kind = inputs ? "input" : "output";
    const std::vector<TensorSpec>& expected = inputs ? spec.inputs : spec.outputs;
    OrtAllocator* alloc = nullptr;
    check(api, api->GetAllocatorWithDefaultOptions(&alloc), "ONNX Runtime allocator");
    size_t count = 0;
    check(api, inputs ? api->SessionGetInputCount(session, &count) : api->SessionGetOutputCount(session, &count),
          path + ": cannot count its " + kind + "s");
    const std::string fix = std::string("; the manifest and the graph disagree: ") + kRebuild;
    if (count != expected.size()) {
        throw Error(VGPT_BAD_BUNDLE, path + " has " + std::to_string(count) + " " + kind + "s, the manifest lists " +
                                         std::to_string(expected.size()) + fix);
    }
    for (size_t i = 0; i < count; ++i) {
        char* raw = nullptr;
        check(api, inputs ? api->SessionGetInputName(session, i, alloc, &raw)
                          : api->SessionGetOutputName(session, i, alloc, &raw),
              path + ": cannot read an " + kind + " name");
        const std::string name = raw;
        alloc->Free(alloc, raw);
        auto found = std::find_if(expected.begin(), expected.end(), [&](const TensorSpec& t) { return t.name == name; });
        if (found == expected.end()) {
            throw Error(VGPT_BAD_BUNDLE, path + ": " + kind + " '" + name + "' is not in the manifest's " + spec.name +
                                             " graph" + fix);
        }
        OrtTypeInfo* info_raw = nullptr;
        check(api, inputs ? api->SessionGetInputTypeInfo(session, i, &info_raw)
                          : api->SessionGetOutputTypeInfo(session, i, &info_raw),
              path + ": cannot read the type of " + name);
        OrtOwner<OrtTypeInfo> info(api, info_raw);
        const OrtTensorTypeAndShapeInfo* tensor = nullptr;
        check(api, api->CastTypeInfoToTensorInfo(info.get(), &tensor), path + ": " + name + " is not a tensor");
        if (!tensor) throw Error(VGPT_BAD_BUNDLE, path + ": " + kind + " '" + name + "' is not a tensor" + fix);
        ONNXTensorElementDataType type;
        size_t rank = 0;
        check(api, api->GetTensorElementType(tensor, &type), path + ": element type of " + name);
        check(api, api->GetDimensionsCount(tensor, &rank), path + ": rank of " + name);
        std::vector<int64_t> dims(rank);
        check(api, api->GetDimensions(tensor, dims.data(), rank), path + ": shape of " + name);
        if (type != element_type(*found)) {
            throw Error(VGPT_BAD_BUNDLE, path + ": " + kind + " '" + name + "' has ONNX element type " +
                                             std::to_string(int(type)) + ", the manifest says " + found->dtype + fix);
        }
        bool same = rank == found->shape.size();
        for (size_t d = 0; same && d < rank; ++d) same = dims[d] < 0 || dims[d] == found->shape[d];  // < 0: dynamic
        if (!same) {
            throw Error(VGPT_BAD_BUNDLE, path + ": " + kind + " '" + name + "' has shape " + shape_text(dims) +
                                             " in the graph, the manifest says " + shape_text(found->shape) + fix);
        }
    }
}

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

ONNXTensorElementDataType element_type(const TensorSpec& t) {
    if (t.dtype == "float32") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    if (t.dtype == "float16") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    if (t.dtype == "bfloat16") return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
    if (t.dtype == "int64") return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    throw Error(VGPT_BAD_BUNDLE, "tensor '" + t.name + "' has dtype '" + t.dtype +
                                     "': vgpt knows float32, float16, bfloat16 and int64; " + kRebuild);
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
    return out;
}

std::shared_ptr<const Model> Model::load(const std::string& path, const Options& options) {
    if (options.backend == VGPT_BACKEND_TENSORRT) {
        throw Error(VGPT_UNSUPPORTED, "this build of vgpt has no TensorRT backend: configure it with "
                                      "-DVGPT_WITH_TENSORRT=ON on a machine with TensorRT and CUDA");
    }
    std::shared_ptr<Model> model(new Model());
    Model& m = *model;
    m.manifest_ = read_manifest(find_bundle(path), options.layout.c_str(), options.verify_hashes);
    const Manifest& man = m.manifest_;
    const TensorSpec& latents = man.graphs.at(kEncoder).tensor("latents");
    if (latents.shape.size() != 4) {
        throw Error(VGPT_BAD_BUNDLE, man.root + ": the encoder's latents are not [1, C, h, w]; " + kRebuild);
    }
    m.dims_ = {man.layout.history_frames, man.layout.clip_frames, man.layout.height(), man.layout.width(),
               int(latents.shape[1]),     man.layout.latent_height, man.layout.latent_width, man.steps};
    if (m.dims_.M < 1 || m.dims_.G < 1 || m.dims_.S < 1 || m.dims_.h < 1 || m.dims_.w < 1) {
        throw Error(VGPT_BAD_BUNDLE, man.root + ": layout " + man.layout_name + " or its sampler steps are not "
                                     "positive; " + std::string(kRebuild));
    }
    check_layout(man, m.dims_);

    m.ort_ = load_ort(options.ort_library.empty() ? nullptr : options.ort_library.c_str());
    const OrtLibrary& lib = *m.ort_;
    const OrtApi* api = lib.api;
    if (!man.ort_version.empty() && version_newer(man.ort_version, lib.version)) {
        throw Error(VGPT_RUNTIME_LIBRARY, man.root + " was exported and verified with onnxruntime " + man.ort_version +
                                              ", newer than the loaded " + lib.version + " (" + lib.path +
                                              "): use a newer ONNX Runtime, or " + kRebuild + " here");
    }
    OrtEnv* env = nullptr;
    check(api, api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "vgpt", &env), "ONNX Runtime CreateEnv");
    m.env_ = OrtOwner<OrtEnv>(api, env);
    OrtMemoryInfo* cpu = nullptr;
    check(api, api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu), "ONNX Runtime memory info");
    m.cpu_ = OrtOwner<OrtMemoryInfo>(api, cpu);

    OrtSessionOptions* so_raw = nullptr;
    check(api, api->CreateSessionOptions(&so_raw), "ONNX Runtime session options");
    OrtOwner<OrtSessionOptions> so(api, so_raw);
    check(api, api->SetIntraOpNumThreads(so.get(), options.intra_op_threads), "intra_op_threads");
    check(api, api->SetInterOpNumThreads(so.get(), 1), "inter-op threads");
    check(api, api->SetSessionExecutionMode(so.get(), ORT_SEQUENTIAL), "execution mode");
    // Q/DQ graphs with FP8 run on the CPU only at the basic optimisation level (as ort_backend.py).
    check(api, api->SetSessionGraphOptimizationLevel(so.get(), man.quantized ? ORT_ENABLE_BASIC : ORT_ENABLE_ALL),
          "graph optimization level");
    // Off by default: a control loop calls predict at its own rate, and spinning threads between the
    // calls would take cores from the rest of the process.
    check(api, api->AddSessionConfigEntry(so.get(), "session.intra_op.allow_spinning", options.allow_spinning ? "1" : "0"),
          "allow_spinning");
    for (const char* graph : {kEncoder, kPrefill, kDenoise, kDecoder}) {
        const GraphSpec& spec = man.graphs.at(graph);
        const std::string file = man.path(spec);
        OrtSession* session = nullptr;
        check(api, api->CreateSession(env, file.c_str(), so.get(), &session), "ONNX Runtime cannot load " + file,
              VGPT_BAD_BUNDLE);
        OrtOwner<OrtSession> owned(api, session);
        check_io(api, session, spec, file, true);
        check_io(api, session, spec, file, false);
        m.sessions_.emplace(graph, std::move(owned));
    }
    return model;
}

}  // namespace vgpt
