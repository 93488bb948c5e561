// The ONNX Runtime backend: one session per graph, shared by every stream of the model; each stream's
// OrtEngine allocates its buffers once and binds them once (two IoBindings ping-pong over the steps).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "error.hpp"
#include "model.hpp"
#include "ort.hpp"

namespace vgpt {
namespace {

ONNXTensorElementDataType element_type(const TensorSpec& t) {
    if (t.dtype == "float32") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    if (t.dtype == "float16") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    if (t.dtype == "bfloat16") return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
    if (t.dtype == "int64") return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    throw Error(VGPT_BAD_BUNDLE, "tensor '" + t.name + "' has dtype '" + t.dtype +
                                     "': vgpt knows float32, float16, bfloat16 and int64; " + kRebuild);
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

// The frame and ring graphs against the layout and each other (the manifest is not trusted to agree): the
// frame's latents [1, 1, C, h, w], one ring slot per history frame, each slot exactly one frame graph's
// output, and the ring read into the very KV cache prefill writes. Throws VGPT_BAD_BUNDLE.
void check_ring(const Manifest& m, const Dims& d) {
    const auto fail = [&](const std::string& what) {
        throw Error(VGPT_BAD_BUNDLE, m.root + ": " + what + "; " + kRebuild);
    };
    if (!m.graphs.count(kFrame) || !m.graphs.count(kRing)) fail("the manifest lists only one of frame and ring");
    const TensorSpec& latents = m.graphs.at(kFrame).tensor("latents");
    const TensorSpec& slot = m.graphs.at(kFrame).tensor("frame_kv");
    const TensorSpec& ring = m.graphs.at(kRing).tensor("ring");
    const TensorSpec& oldest = m.graphs.at(kRing).tensor("oldest");
    const TensorSpec& kv = m.graphs.at(kRing).tensor("kv_cache");
    const TensorSpec& prefill = m.graphs.at(kPrefill).tensor("kv_cache");
    if (latents.shape != std::vector<int64_t>{1, 1, d.C, d.h, d.w} || latents.dtype != "float32") {
        fail("frame's 'latents' are " + latents.dtype + " " + shape_text(latents.shape) +
             ", not float32 [1, 1, C, h, w]");
    }
    std::vector<int64_t> slots = {d.M};
    slots.insert(slots.end(), slot.shape.begin(), slot.shape.end());
    if (ring.shape != slots || ring.dtype != slot.dtype || slot.numel() * size_t(d.M) != prefill.numel()) {
        fail("ring's 'ring' " + ring.dtype + " " + shape_text(ring.shape) + " is not " + std::to_string(d.M) +
             " slots of frame's 'frame_kv' " + slot.dtype + " " + shape_text(slot.shape) +
             " filling prefill's KV cache");
    }
    if (oldest.shape != std::vector<int64_t>{1} || oldest.dtype != "int64") fail("ring's 'oldest' is not int64 [1]");
    if (kv.shape != prefill.shape || kv.dtype != prefill.dtype) {
        fail("ring's 'kv_cache' " + kv.dtype + " " + shape_text(kv.shape) + " is not prefill's " + prefill.dtype + " " +
             shape_text(prefill.shape));
    }
}

// A loaded bundle over ONNX Runtime. ONNX Runtime sessions are safe to run concurrently.
class OrtModel : public Model {
public:
    static std::shared_ptr<const Model> load(const std::string& path, const Options& options);
    std::unique_ptr<Engine> engine() const override;

    const OrtApi* api() const { return ort_->api; }
    OrtSession* session(const std::string& graph) const { return sessions_.at(graph).get(); }
    const GraphSpec& spec(const std::string& graph) const { return manifest_.graphs.at(graph); }
    const OrtMemoryInfo* cpu() const { return cpu_.get(); }
    bool has_ring() const { return sessions_.count(kRing) != 0; }

private:
    // Declaration order is destruction order reversed: sessions go before the environment, and the
    // library handle (never unloaded) is held for all of them.
    std::shared_ptr<const OrtLibrary> ort_;
    OrtOwner<OrtEnv> env_;
    OrtOwner<OrtMemoryInfo> cpu_;
    std::map<std::string, OrtOwner<OrtSession>> sessions_;
};

// A host buffer that ONNX Runtime reads or writes in place through an OrtValue over it.
class Tensor {
public:
    Tensor(const OrtModel& model, const TensorSpec& spec);
    OrtValue* value() const { return value_.get(); }
    float* f32() const { return static_cast<float*>(data_.get()); }
    int64_t* i64() const { return static_cast<int64_t*>(data_.get()); }
    size_t bytes() const { return bytes_; }

private:
    size_t bytes_;
    std::unique_ptr<void, decltype(&std::free)> data_{nullptr, &std::free};
    OrtOwner<OrtValue> value_;  // declared after data_: released before the memory it views
};

Tensor::Tensor(const OrtModel& model, const TensorSpec& spec) : bytes_(spec.bytes()) {
    const OrtApi* api = model.api();
    data_.reset(std::aligned_alloc(64, (bytes_ + 63) / 64 * 64));  // size: a multiple of the alignment
    if (!data_) throw std::bad_alloc();
    std::memset(data_.get(), 0, bytes_);
    OrtValue* value = nullptr;
    check(api, api->CreateTensorWithDataAsOrtValue(model.cpu(), data_.get(), bytes_, spec.shape.data(), spec.shape.size(),
                                                   element_type(spec), &value),
          "ONNX Runtime tensor '" + spec.name + "'");
    value_ = OrtOwner<OrtValue>(api, value);
}

// One stream's buffers and bindings: the KV cache bound as prefill's output and every step's input;
// the latent clip and the step index in two pairs of buffers, binding A reading pair 0 and writing
// pair 1, binding B the reverse, so the loop is S bound runs and nothing else.
class OrtEngine : public Engine {
public:
    explicit OrtEngine(const OrtModel& model);
    float* frame() override { return frame_.f32(); }
    const float* encode() override;
    void prefill(const float* history) override;
    const float* denoise(const float* noise) override;
    const float* decode(const float* clip) override;
    bool exact_rolling() const override { return model_.has_ring(); }
    void push(const float* latents) override;
    void read_window() override;

private:
    using Binding = OrtOwner<OrtIoBinding>;
    using Values = std::vector<std::pair<const char*, OrtValue*>>;
    Binding bind(const char* graph, std::initializer_list<std::pair<const char*, const Tensor*>> inputs,
                 std::initializer_list<std::pair<const char*, const Tensor*>> outputs);
    Binding bind_values(const char* graph, const Values& inputs, const Values& outputs);
    struct Ring;
    void run(const char* graph, const Binding& binding);

    const OrtModel& model_;  // outlived: the stream holds the model
    const OrtApi* api_;
    int steps_;
    Tensor frame_, latent_, history_, kv_, z_[2], step_[2], clip_, decoded_;  // before the bindings
    Binding encode_, prefill_, steps_bound_[2], decode_;
    OrtOwner<OrtRunOptions> run_options_;
    std::unique_ptr<Ring> ring_;  // GPDiT's exact rolling window, made on the first push
};

// GPDiT's exact rolling window (export/gpdit_graphs.py): a ring of M slots, one frame's keys/values each,
// slot-major so that each slot is one contiguous block. Each slot has its own binding of the frame graph,
// its output an OrtValue over that slot's memory, so a pushed frame is written in place (no copy); the
// ring graph reads the newest M frames, each rotated to its window place, into the stream's KV cache.
struct OrtEngine::Ring {
    Ring(const OrtModel& m) : latents(m, m.spec(kFrame).tensor("latents")), ring(m, m.spec(kRing).tensor("ring")),
                              oldest(m, m.spec(kRing).tensor("oldest")) {}
    Tensor latents, ring, oldest;
    std::vector<OrtOwner<OrtValue>> slots;  // before the bindings that hold them
    std::vector<Binding> pushes;
    Binding read;
    int64_t count = 0;  // frames pushed
};

OrtEngine::OrtEngine(const OrtModel& m)
    : model_(m),
      api_(m.api()),
      steps_(m.dims().S),
      frame_(m, m.spec(kEncoder).tensor("frames")),
      latent_(m, m.spec(kEncoder).tensor("latents")),
      history_(m, m.spec(kPrefill).tensor("history")),
      kv_(m, m.spec(kPrefill).tensor("kv_cache")),
      z_{{m, m.spec(kDenoise).tensor("z")}, {m, m.spec(kDenoise).tensor("z_next")}},
      step_{{m, m.spec(kDenoise).tensor("step")}, {m, m.spec(kDenoise).tensor("step_next")}},
      clip_(m, m.spec(kDecoder).tensor("latents")),
      decoded_(m, m.spec(kDecoder).tensor("frames")) {
    encode_ = bind(kEncoder, {{"frames", &frame_}}, {{"latents", &latent_}});
    prefill_ = bind(kPrefill, {{"history", &history_}}, {{"kv_cache", &kv_}});
    for (int a = 0; a < 2; ++a) {
        steps_bound_[a] = bind(kDenoise, {{"z", &z_[a]}, {"kv_cache", &kv_}, {"step", &step_[a]}},
                               {{"z_next", &z_[1 - a]}, {"step_next", &step_[1 - a]}});
    }
    decode_ = bind(kDecoder, {{"latents", &clip_}}, {{"frames", &decoded_}});
    OrtRunOptions* ro = nullptr;
    check(api_, api_->CreateRunOptions(&ro), "ONNX Runtime run options");
    run_options_ = OrtOwner<OrtRunOptions>(api_, ro);
}

OrtEngine::Binding OrtEngine::bind(const char* graph, std::initializer_list<std::pair<const char*, const Tensor*>> inputs,
                                   std::initializer_list<std::pair<const char*, const Tensor*>> outputs) {
    Values in, out;
    for (const auto& [name, tensor] : inputs) in.emplace_back(name, tensor->value());
    for (const auto& [name, tensor] : outputs) out.emplace_back(name, tensor->value());
    return bind_values(graph, in, out);
}

OrtEngine::Binding OrtEngine::bind_values(const char* graph, const Values& inputs, const Values& outputs) {
    OrtIoBinding* raw = nullptr;
    check(api_, api_->CreateIoBinding(model_.session(graph), &raw), std::string("ONNX Runtime binding of ") + graph);
    Binding binding(api_, raw);
    for (const auto& [name, value] : inputs) {
        check(api_, api_->BindInput(raw, name, value), std::string("binding ") + graph + " input " + name);
    }
    for (const auto& [name, value] : outputs) {
        check(api_, api_->BindOutput(raw, name, value), std::string("binding ") + graph + " output " + name);
    }
    return binding;
}

void OrtEngine::push(const float* latents) {
    if (!model_.has_ring()) Engine::push(latents);
    if (!ring_) {
        auto r = std::make_unique<Ring>(model_);
        const TensorSpec& slot = model_.spec(kFrame).tensor("frame_kv");
        const int frames = model_.dims().M;
        for (int s = 0; s < frames; ++s) {
            OrtValue* view = nullptr;
            char* at = reinterpret_cast<char*>(r->ring.f32()) + size_t(s) * slot.bytes();
            check(api_, api_->CreateTensorWithDataAsOrtValue(model_.cpu(), at, slot.bytes(), slot.shape.data(),
                                                             slot.shape.size(), element_type(slot), &view),
                  "ONNX Runtime view of ring slot " + std::to_string(s));
            r->slots.emplace_back(api_, view);
            r->pushes.push_back(bind_values(kFrame, {{"latents", r->latents.value()}}, {{"frame_kv", view}}));
        }
        r->read = bind(kRing, {{"ring", &r->ring}, {"oldest", &r->oldest}}, {{"kv_cache", &kv_}});
        ring_ = std::move(r);
    }
    std::memcpy(ring_->latents.f32(), latents, ring_->latents.bytes());
    run(kFrame, ring_->pushes[size_t(ring_->count % model_.dims().M)]);
    ++ring_->count;
}

void OrtEngine::read_window() {
    const int frames = model_.dims().M;
    if (!ring_ || ring_->count < frames) {
        throw Error(VGPT_NOT_READY, "the rolling window holds " + std::to_string(ring_ ? ring_->count : 0) +
                                        " of its " + std::to_string(frames) + " frames: observe the whole window first");
    }
    ring_->oldest.i64()[0] = ring_->count % frames;
    run(kRing, ring_->read);
}

void OrtEngine::run(const char* graph, const Binding& binding) {
    const double start = seconds_now();
    check(api_, api_->RunWithBinding(model_.session(graph), run_options_.get(), binding.get()),
          std::string("ONNX Runtime failed running ") + graph + ".onnx");
    inside += seconds_now() - start;
}

const float* OrtEngine::encode() {
    run(kEncoder, encode_);
    return latent_.f32();
}

void OrtEngine::prefill(const float* history) {
    std::memcpy(history_.f32(), history, history_.bytes());
    run(kPrefill, prefill_);
}

const float* OrtEngine::denoise(const float* noise) {
    std::memcpy(z_[0].f32(), noise, z_[0].bytes());
    step_[0].i64()[0] = 0;
    for (int i = 0; i < steps_; ++i) run(kDenoise, steps_bound_[i & 1]);  // the hot loop: one bound run per step
    return z_[steps_ & 1].f32();                                          // [1, G, C, h, w]
}

const float* OrtEngine::decode(const float* clip) {
    std::memcpy(clip_.f32(), clip, clip_.bytes());
    run(kDecoder, decode_);
    return decoded_.f32();
}

std::unique_ptr<Engine> OrtModel::engine() const { return std::make_unique<OrtEngine>(*this); }

std::shared_ptr<const Model> OrtModel::load(const std::string& path, const Options& options) {
    std::shared_ptr<OrtModel> model(new OrtModel());
    OrtModel& m = *model;
    m.manifest_ = read_manifest(find_bundle(path), options.layout.c_str(), options.verify_hashes,
                              options.trusted_keys);
    const Manifest& man = m.manifest_;
    m.dims_ = bundle_dims(man);

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
    std::vector<const char*> graphs = {kEncoder, kPrefill, kDenoise, kDecoder};
    if (man.graphs.count(kFrame) || man.graphs.count(kRing)) {
        check_ring(man, m.dims_);
        graphs.insert(graphs.end(), {kFrame, kRing});
    }
    for (const char* graph : graphs) {
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

}  // namespace

std::shared_ptr<const Model> load_onnxruntime(const std::string& path, const Options& options) {
    return OrtModel::load(path, options);
}

}  // namespace vgpt
