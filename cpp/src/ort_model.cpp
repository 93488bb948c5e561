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
    void* data() const { return data_.get(); }
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

// One stream's buffers and bindings, made by the layout's binding plan (manifest.hpp BindingPlan, written by
// vgpt-export): the KV cache bound as prefill's output and every step's input; the latent clip and the step
// index in two pairs of buffers, step binding 0 reading pair 0 and writing pair 1, binding 1 the reverse, so
// the loop is S bound runs and nothing else. GPDiT's exact rolling window (push, read) is bound on first use:
// each push binding's output is a view of one ring slot, so an observed frame's keys/values are written in
// place, and read turns the ring into the KV cache the steps read.
class OrtEngine : public Engine {
public:
    explicit OrtEngine(const OrtModel& model);
    float* frame() override { return buffer(io_.frame).f32(); }
    const float* encode() override;
    void prefill(const float* history) override;
    const float* denoise(const float* noise) override;
    const float* decode(const float* clip) override;
    bool exact_rolling() const override { return model_.has_ring(); }
    void push(const float* latents) override;
    void read_window() override;

private:
    using IoBinding = OrtOwner<OrtIoBinding>;
    Tensor& buffer(const std::string& name);  // allocated the first time a phase binds it
    OrtValue* value(const TensorSpec& tensor, const Target& target);
    const std::vector<IoBinding>& phase(const std::string& name);  // bound on first use
    void run(const char* graph, const IoBinding& binding);

    const OrtModel& model_;  // outlived: the stream holds the model
    const BindingPlan& plan_;
    const OrtApi* api_;
    int steps_;
    struct {
        std::string frame, latent, history, noise, step, result, clip, frames;
    } io_;  // the buffers written from and read to the host
    // Declaration order is destruction order reversed: bindings, then the views they bind, then the memory.
    std::map<std::string, std::unique_ptr<Tensor>> buffers_;
    std::vector<OrtOwner<OrtValue>> views_;
    std::map<std::string, std::vector<IoBinding>> phases_;
    OrtOwner<OrtRunOptions> run_options_;
    int64_t pushed_ = 0;  // frames pushed into the ring
};

OrtEngine::OrtEngine(const OrtModel& m) : model_(m), plan_(m.manifest().plan), api_(m.api()), steps_(m.dims().S) {
    io_.frame = plan_.target("encode", "frames").buffer;
    io_.latent = plan_.target("encode", "latents").buffer;
    io_.history = plan_.target("prefill", "history").buffer;
    io_.noise = plan_.target("denoise", "z").buffer;
    io_.step = plan_.target("denoise", "step").buffer;
    io_.result = plan_.result(steps_);
    io_.clip = plan_.target("decode", "latents").buffer;
    io_.frames = plan_.target("decode", "frames").buffer;
    for (const char* p : {"encode", "prefill", "denoise", "decode"}) phase(p);
    OrtRunOptions* ro = nullptr;
    check(api_, api_->CreateRunOptions(&ro), "ONNX Runtime run options");
    run_options_ = OrtOwner<OrtRunOptions>(api_, ro);
}

Tensor& OrtEngine::buffer(const std::string& name) {
    auto found = buffers_.find(name);
    if (found != buffers_.end()) return *found->second;
    const BufferSpec& b = plan_.buffer(name);
    return *buffers_.emplace(name, std::make_unique<Tensor>(model_, TensorSpec{b.name, b.shape, b.dtype})).first->second;
}

OrtValue* OrtEngine::value(const TensorSpec& tensor, const Target& target) {
    Tensor& b = buffer(target.buffer);
    if (target.slot < 0) return b.value();
    // check_plan: the slot is in range and holds exactly this tensor.
    char* at = static_cast<char*>(b.data()) + size_t(target.slot) * tensor.bytes();
    OrtValue* view = nullptr;
    check(api_, api_->CreateTensorWithDataAsOrtValue(model_.cpu(), at, tensor.bytes(), tensor.shape.data(),
                                                     tensor.shape.size(), element_type(tensor), &view),
          "ONNX Runtime view of slot " + std::to_string(target.slot) + " of " + target.buffer);
    views_.emplace_back(api_, view);
    return view;
}

const std::vector<OrtEngine::IoBinding>& OrtEngine::phase(const std::string& name) {
    auto found = phases_.find(name);
    if (found != phases_.end()) return found->second;
    const Phase& p = plan_.phase(name);
    const GraphSpec& spec = model_.spec(p.graph);
    std::vector<IoBinding> bound;
    for (const Binding& b : p.bindings) {
        OrtIoBinding* raw = nullptr;
        check(api_, api_->CreateIoBinding(model_.session(p.graph), &raw), "ONNX Runtime binding of " + p.graph);
        IoBinding binding(api_, raw);
        for (const auto& [tensor, target] : b.inputs) {
            check(api_, api_->BindInput(raw, tensor.c_str(), value(spec.tensor(tensor), target)),
                  "binding " + p.graph + " input " + tensor);
        }
        for (const auto& [tensor, target] : b.outputs) {
            check(api_, api_->BindOutput(raw, tensor.c_str(), value(spec.tensor(tensor), target)),
                  "binding " + p.graph + " output " + tensor);
        }
        bound.push_back(std::move(binding));
    }
    return phases_.emplace(name, std::move(bound)).first->second;
}

void OrtEngine::push(const float* latents) {
    if (!model_.has_ring()) Engine::push(latents);
    const std::vector<IoBinding>& pushes = phase("push");
    phase("read");  // bound with push: the two run together
    Tensor& in = buffer(plan_.target("push", "latents").buffer);
    std::memcpy(in.f32(), latents, in.bytes());
    run(kFrame, pushes[size_t(pushed_ % int64_t(pushes.size()))]);
    ++pushed_;
}

void OrtEngine::read_window() {
    const int frames = model_.dims().M;
    if (pushed_ < frames) {
        throw Error(VGPT_NOT_READY, "the rolling window holds " + std::to_string(pushed_) + " of its " +
                                        std::to_string(frames) + " frames: observe the whole window first");
    }
    buffer(plan_.target("read", "oldest").buffer).i64()[0] = pushed_ % frames;
    run(kRing, phase("read")[0]);
}

void OrtEngine::run(const char* graph, const IoBinding& binding) {
    const double start = seconds_now();
    check(api_, api_->RunWithBinding(model_.session(graph), run_options_.get(), binding.get()),
          std::string("ONNX Runtime failed running ") + graph + ".onnx");
    inside += seconds_now() - start;
}

const float* OrtEngine::encode() {
    run(kEncoder, phases_.at("encode")[0]);
    return buffer(io_.latent).f32();
}

void OrtEngine::prefill(const float* history) {
    Tensor& in = buffer(io_.history);
    std::memcpy(in.f32(), history, in.bytes());
    run(kPrefill, phases_.at("prefill")[0]);
}

const float* OrtEngine::denoise(const float* noise) {
    Tensor& z = buffer(io_.noise);
    std::memcpy(z.f32(), noise, z.bytes());
    buffer(io_.step).i64()[0] = 0;
    const std::vector<IoBinding>& steps = phases_.at("denoise");
    for (int i = 0; i < steps_; ++i) run(kDenoise, steps[size_t(i & 1)]);  // the hot loop: one bound run per step
    return buffer(io_.result).f32();                                       // [1, G, C, h, w]
}

const float* OrtEngine::decode(const float* clip) {
    Tensor& in = buffer(io_.clip);
    std::memcpy(in.f32(), clip, in.bytes());
    run(kDecoder, phases_.at("decode")[0]);
    return buffer(io_.frames).f32();
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
    // The graphs of the phases this runtime runs (export/registry.py: the C/C++ runtime's ONNX Runtime engine
    // loads no append graph; its rolling window is GPDiT's exact one).
    std::vector<std::string> graphs;
    for (const char* phase : {"encode", "prefill", "denoise", "decode", "push", "read"}) {
        if (man.plan.has(phase)) graphs.push_back(man.plan.phase(phase).graph);
    }
    if (man.plan.has("push") || man.graphs.count(kFrame) || man.graphs.count(kRing)) check_ring(man, m.dims_);
    for (const std::string& graph : graphs) {
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
