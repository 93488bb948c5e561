// The TensorRT backend, compiled only with -DVGPT_WITH_TENSORRT=ON: written against the TensorRT 10.1+
// and 11.x headers (no builder API, no call either removed) and the CUDA 12/13 runtime.
//
// A TrtModel deserializes the plans of a vgpt-build folder once (after engines.cpp's refusals: another
// TensorRT version, another GPU, changed plans, plans built from other graphs than the bundle holds).
// Each stream's TrtEngine has its own CUDA stream, device buffers (engines.cpp device_buffers: one KV cache
// bound to prefill and both step contexts), pinned host copies of what the host reads or writes, and
// one execution context per binding set (encoder, prefill, decoder, and two for the alternating steps)
// whose tensor addresses are set once, and one user-managed activation block all five share (they run
// one after another on the stream, under the Stream's lock). The S denoising steps are captured once per
// stream in a CUDA graph and replayed for every clip; between clips the host only uploads the noise,
// zeroes the step index and downloads the clip (as runtime/backends/trt_backend.py). Where the capture
// fails, the capture is ended, the CUDA error cleared, and the stream runs the steps without a graph from
// then on, with one warning (as trtexec does).
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

#include "engines.hpp"
#include "error.hpp"
#include "model.hpp"

namespace vgpt {
namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "vgpt: TensorRT: %s\n", message);
    }
};

void cuda(cudaError_t status, const std::string& what) {
    if (status != cudaSuccess) throw Error(VGPT_RUNTIME_LIBRARY, what + ": CUDA error " + cudaGetErrorString(status));
}

std::string numpy_dtype(nvinfer1::DataType t) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT: return "float32";
        case nvinfer1::DataType::kHALF: return "float16";
        case nvinfer1::DataType::kBF16: return "bfloat16";
        case nvinfer1::DataType::kINT64: return "int64";
        case nvinfer1::DataType::kINT32: return "int32";
        default: return "TensorRT type " + std::to_string(int(t));
    }
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(VGPT_BAD_BUNDLE, "cannot read " + path);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

constexpr const char* kStreamGraphs[] = {kEncoder, kPrefill, kDenoise, kDecoder};

class TrtModel : public Model, public std::enable_shared_from_this<TrtModel> {
public:
    static std::shared_ptr<const Model> load(const std::string& path, const Options& options);
    std::unique_ptr<Engine> engine() const override;

    // A new execution context of a graph's engine without its own activation memory (the stream gives
    // it its shared block); creation serialized: streams are made from any thread.
    std::unique_ptr<nvinfer1::IExecutionContext> context(const char* graph) const {
        std::lock_guard<std::mutex> lock(mu_);
        std::unique_ptr<nvinfer1::IExecutionContext> ctx(
            engines_.at(graph)->createExecutionContext(nvinfer1::ExecutionContextAllocationStrategy::kUSER_MANAGED));
        if (!ctx) throw Error(VGPT_RUNTIME_LIBRARY, std::string("TensorRT cannot create a context of the ") + graph + " engine");
        return ctx;
    }
    const DeviceBuffers& buffers() const { return buffers_; }
    int device() const { return device_; }
    size_t activation_bytes() const { return activation_bytes_; }

private:
    // Destroyed in reverse: the engines before the runtime, both before the logger they report to.
    Logger logger_;
    std::unique_ptr<nvinfer1::IRuntime> runtime_;
    std::map<std::string, std::unique_ptr<nvinfer1::ICudaEngine>> engines_;
    DeviceBuffers buffers_;
    int device_ = 0;
    size_t activation_bytes_ = 0;  // the block a stream's contexts share (engines.hpp activation_bytes)
    mutable std::mutex mu_;
};

std::shared_ptr<const Model> TrtModel::load(const std::string& path, const Options& options) {
    auto model = std::make_shared<TrtModel>();
    TrtModel& m = *model;
    read_engine_manifest(find_engines(path));  // a missing or malformed engines.json is said before a lack of GPU
    cuda(cudaGetDevice(&m.device_), "no CUDA device");
    cudaDeviceProp prop{};
    cuda(cudaGetDeviceProperties(&prop, m.device_), "CUDA device properties");
    CheckedEngines checked = check_engine_folder(
        path, tensorrt_host(getInferLibVersion(), prop.name, prop.major, prop.minor), options.verify_hashes);
    const EngineManifest em = std::move(checked.engines);
    m.manifest_ = std::move(checked.bundle);
    m.dims_ = bundle_dims(m.manifest_);
    m.buffers_ = device_buffers(m.manifest_);
    m.runtime_.reset(nvinfer1::createInferRuntime(m.logger_));
    if (!m.runtime_) throw Error(VGPT_RUNTIME_LIBRARY, "TensorRT cannot create its runtime");
    for (const char* graph : kStreamGraphs) {
        const std::string file = em.folder + "/" + em.plans.at(graph).file;
        const std::vector<char> data = read_file(file);
        std::unique_ptr<nvinfer1::ICudaEngine> engine(m.runtime_->deserializeCudaEngine(data.data(), data.size()));
        if (!engine) throw Error(VGPT_BAD_BUNDLE, "TensorRT cannot deserialize " + file + "; rebuild it with vgpt-build");
        const GraphSpec& spec = m.manifest_.graphs.at(graph);
        for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
            const char* name = engine->getIOTensorName(i);
            const nvinfer1::Dims d = engine->getTensorShape(name);
            check_engine_tensor(graph, spec.tensor(name), numpy_dtype(engine->getTensorDataType(name)),
                                std::vector<int64_t>(d.d, d.d + d.nbDims));
        }
        m.engines_.emplace(graph, std::move(engine));
    }
    std::vector<int64_t> sizes;
    for (const auto& [graph, engine] : m.engines_) sizes.push_back(engine->getDeviceMemorySizeV2());
    m.activation_bytes_ = vgpt::activation_bytes(sizes);
    return model;
}

using DevicePtr = std::unique_ptr<void, cudaError_t (*)(void*)>;

class TrtEngine : public Engine {
public:
    explicit TrtEngine(std::shared_ptr<const TrtModel> model);
    ~TrtEngine() override;
    float* frame() override { return host(io().frame); }
    const float* encode() override;
    void prefill(const float* history) override;
    const float* denoise(const float* noise) override;
    const float* decode(const float* clip) override;

private:
    float* host(const std::string& buffer) { return static_cast<float*>(host_.at(buffer).get()); }
    void* device(const std::string& buffer) { return device_.at(buffer).get(); }
    void upload(const std::string& buffer);    // its pinned host copy -> the device (on the stream)
    void download(const std::string& buffer);  // the device -> its pinned host copy (on the stream)
    void enqueue(nvinfer1::IExecutionContext& ctx, const char* what);
    void loop();      // the S steps, alternating the two step contexts
    void capture();   // warm up once, then record loop() into a CUDA graph; on failure, leaves none
    void finish();    // waits for the stream; the wait counts as time inside the backend

    std::shared_ptr<const TrtModel> model_;
    const DeviceBuffers& buffers_;
    const int steps_;
    const StreamIo& io() const { return buffers_.io; }
    // Destroyed in reverse: the graph, the contexts, then the memory they point at, then the stream.
    std::unique_ptr<CUstream_st, cudaError_t (*)(cudaStream_t)> stream_{nullptr, &cudaStreamDestroy};
    std::map<std::string, DevicePtr> device_, host_;
    DevicePtr activations_{nullptr, &cudaFree};  // shared by the five contexts
    std::unique_ptr<nvinfer1::IExecutionContext> encoder_, prefill_, decoder_, step_[2];
    bool capture_failed_ = false;  // the steps run without a graph on this stream
    std::unique_ptr<CUgraph_st, cudaError_t (*)(cudaGraph_t)> graph_{nullptr, &cudaGraphDestroy};
    std::unique_ptr<CUgraphExec_st, cudaError_t (*)(cudaGraphExec_t)> exec_{nullptr, &cudaGraphExecDestroy};
};

TrtEngine::TrtEngine(std::shared_ptr<const TrtModel> model)
    : model_(std::move(model)), buffers_(model_->buffers()), steps_(model_->dims().S) {
    cuda(cudaSetDevice(model_->device()), "cudaSetDevice");
    cudaStream_t s = nullptr;
    cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    stream_.reset(s);
    for (const DeviceBuffer& b : buffers_.buffers) {
        void* p = nullptr;
        cuda(cudaMalloc(&p, b.bytes), "cudaMalloc of " + b.name);
        device_.emplace(b.name, DevicePtr(p, &cudaFree));
        cuda(cudaMemset(p, 0, b.bytes), "cudaMemset of " + b.name);
    }
    for (const std::string& name : {io().frame, io().latent, io().history, io().noise, io().result, io().clip,
                                    io().frames}) {
        if (host_.count(name)) continue;  // the result may be the noise's buffer
        void* p = nullptr;
        cuda(cudaMallocHost(&p, buffers_.buffer(name).bytes), "cudaMallocHost of " + name);
        host_.emplace(name, DevicePtr(p, &cudaFreeHost));
    }
    encoder_ = model_->context(kEncoder);
    prefill_ = model_->context(kPrefill);
    decoder_ = model_->context(kDecoder);
    step_[0] = model_->context(kDenoise);
    step_[1] = model_->context(kDenoise);
    void* block = nullptr;
    cuda(cudaMalloc(&block, model_->activation_bytes()), "cudaMalloc of the activation memory");
    activations_.reset(block);
    for (nvinfer1::IExecutionContext* ctx :
         {encoder_.get(), prefill_.get(), decoder_.get(), step_[0].get(), step_[1].get()}) {
        ctx->setDeviceMemoryV2(block, int64_t(model_->activation_bytes()));
    }
    // Every address once: the codec and prefill contexts from the buffers' bindings, the two step contexts
    // from its two binding sets. Nothing is rebound afterwards, so the captured graph stays valid.
    std::map<std::string, nvinfer1::IExecutionContext*> single = {
        {kEncoder, encoder_.get()}, {kPrefill, prefill_.get()}, {kDecoder, decoder_.get()}};
    for (const DeviceBuffer& b : buffers_.buffers) {
        for (const auto& [graph, tensor] : b.bindings) {
            if (graph == kDenoise) continue;
            if (!single.at(graph)->setTensorAddress(tensor.c_str(), device(b.name))) {
                throw Error(VGPT_RUNTIME_LIBRARY, "TensorRT refuses the address of " + graph + "'s " + tensor);
            }
        }
    }
    for (int a = 0; a < 2; ++a) {
        for (const auto& [tensor, buffer] : buffers_.steps[a]) {
            if (!step_[a]->setTensorAddress(tensor.c_str(), device(buffer))) {
                throw Error(VGPT_RUNTIME_LIBRARY, "TensorRT refuses the address of the step's " + tensor);
            }
        }
    }
}

TrtEngine::~TrtEngine() {
    if (stream_) cudaStreamSynchronize(stream_.get());  // nothing in flight on the memory about to be freed
}

void TrtEngine::upload(const std::string& buffer) {
    cuda(cudaMemcpyAsync(device(buffer), host_.at(buffer).get(), buffers_.buffer(buffer).bytes, cudaMemcpyHostToDevice,
                         stream_.get()),
         "upload of " + buffer);
}

void TrtEngine::download(const std::string& buffer) {
    cuda(cudaMemcpyAsync(host_.at(buffer).get(), device(buffer), buffers_.buffer(buffer).bytes, cudaMemcpyDeviceToHost,
                         stream_.get()),
         "download of " + buffer);
}

void TrtEngine::enqueue(nvinfer1::IExecutionContext& ctx, const char* what) {
    const double start = seconds_now();
    if (!ctx.enqueueV3(stream_.get())) throw Error(VGPT_RUNTIME_LIBRARY, std::string("TensorRT failed to enqueue ") + what);
    inside += seconds_now() - start;
}

void TrtEngine::finish() {
    const double start = seconds_now();
    cuda(cudaStreamSynchronize(stream_.get()), "the TensorRT stream");
    inside += seconds_now() - start;
}

void TrtEngine::loop() {
    for (int i = 0; i < steps_; ++i) enqueue(*step_[i & 1], "a denoising step");
}

void TrtEngine::capture() {
    // TensorRT may allocate or set up on a context's first enqueue, which a capture must not record.
    cuda(cudaMemsetAsync(device(io().step), 0, buffers_.buffer(io().step).bytes, stream_.get()), "step reset");
    loop();
    finish();
    std::string failure;
    cudaGraph_t graph = nullptr;
    cudaError_t status = cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal);
    if (status == cudaSuccess) {
        try {
            loop();
        } catch (const Error& e) {
            failure = e.what();
        }
        // Always end the capture, also after a failed enqueue (an invalidated capture ends with an error).
        const cudaError_t ended = cudaStreamEndCapture(stream_.get(), &graph);
        if (failure.empty() && ended != cudaSuccess) {
            failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(ended);
        }
    } else {
        failure = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(status);
    }
    cudaGraphExec_t exec = nullptr;
    if (failure.empty()) {
        status = cudaGraphInstantiateWithFlags(&exec, graph, 0);
        if (status != cudaSuccess) failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(status);
    }
    if (!failure.empty()) {
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();  // the capture's error is not sticky: clear it so later calls do not report it
        capture_failed_ = true;
        std::fprintf(stderr, "vgpt: TensorRT: CUDA graph capture of the denoising loop failed (%s); this stream "
                             "runs the %d steps without a graph\n", failure.c_str(), steps_);
        return;
    }
    graph_.reset(graph);
    exec_.reset(exec);
}

const float* TrtEngine::encode() {
    cuda(cudaSetDevice(model_->device()), "cudaSetDevice");
    upload(io().frame);
    enqueue(*encoder_, "the encoder");
    download(io().latent);
    finish();
    return host(io().latent);
}

void TrtEngine::prefill(const float* history) {
    cuda(cudaSetDevice(model_->device()), "cudaSetDevice");
    std::memcpy(host(io().history), history, buffers_.buffer(io().history).bytes);
    upload(io().history);
    enqueue(*prefill_, "prefill");
    finish();  // the pinned history copy is free again, and the phase's time is its own
}

const float* TrtEngine::denoise(const float* noise) {
    cuda(cudaSetDevice(model_->device()), "cudaSetDevice");
    // Once per stream, before the noise goes in (the warm-up writes z0 and z1).
    if (!exec_ && !capture_failed_) capture();
    std::memcpy(host(io().noise), noise, buffers_.buffer(io().noise).bytes);
    upload(io().noise);
    cuda(cudaMemsetAsync(device(io().step), 0, buffers_.buffer(io().step).bytes, stream_.get()), "step reset");
    if (exec_) {
        const double start = seconds_now();
        cuda(cudaGraphLaunch(exec_.get(), stream_.get()), "CUDA graph launch of the denoising loop");
        inside += seconds_now() - start;
    } else {
        loop();  // enqueue() counts its own time
    }
    download(io().result);
    finish();
    return host(io().result);
}

const float* TrtEngine::decode(const float* clip) {
    cuda(cudaSetDevice(model_->device()), "cudaSetDevice");
    std::memcpy(host(io().clip), clip, buffers_.buffer(io().clip).bytes);
    upload(io().clip);
    enqueue(*decoder_, "the decoder");
    download(io().frames);
    finish();
    return host(io().frames);
}

std::unique_ptr<Engine> TrtModel::engine() const { return std::make_unique<TrtEngine>(shared_from_this()); }

}  // namespace

std::shared_ptr<const Model> load_tensorrt(const std::string& path, const Options& options) {
    return TrtModel::load(path, options);
}

}  // namespace vgpt
