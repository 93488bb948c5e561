#include "stream.hpp"

#include <chrono>
#include <cstring>

namespace vgpt {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

Tensor::Tensor(const Model& model, const TensorSpec& spec) {
    const OrtApi* api = model.api();
    const size_t bytes = spec.bytes();
    data_.reset(std::aligned_alloc(64, (bytes + 63) / 64 * 64));  // size: a multiple of the alignment
    if (!data_) throw std::bad_alloc();
    std::memset(data_.get(), 0, bytes);
    OrtValue* value = nullptr;
    check(api, api->CreateTensorWithDataAsOrtValue(model.cpu(), data_.get(), bytes, spec.shape.data(), spec.shape.size(),
                                                   element_type(spec), &value),
          "ONNX Runtime tensor '" + spec.name + "'");
    value_ = OrtOwner<OrtValue>(api, value);
}

Stream::Stream(std::shared_ptr<const Model> model, uint64_t seed)
    : model_(std::move(model)),
      api_(model_->api()),
      d_(model_->dims()),
      frame_(*model_, model_->spec(kEncoder).tensor("frames")),
      latent_(*model_, model_->spec(kEncoder).tensor("latents")),
      history_(*model_, model_->spec(kPrefill).tensor("history")),
      kv_(*model_, model_->spec(kPrefill).tensor("kv_cache")),
      z_{{*model_, model_->spec(kDenoise).tensor("z")}, {*model_, model_->spec(kDenoise).tensor("z_next")}},
      step_{{*model_, model_->spec(kDenoise).tensor("step")}, {*model_, model_->spec(kDenoise).tensor("step_next")}},
      clip_(*model_, model_->spec(kDecoder).tensor("latents")),
      decoded_(*model_, model_->spec(kDecoder).tensor("frames")),
      generator_(seed) {
    encode_ = bind(kEncoder, {{"frames", &frame_}}, {{"latents", &latent_}});
    // The KV cache: prefill's output and every step's input, one buffer bound on both sides.
    prefill_ = bind(kPrefill, {{"history", &history_}}, {{"kv_cache", &kv_}});
    for (int a = 0; a < 2; ++a) {
        steps_[a] = bind(kDenoise, {{"z", &z_[a]}, {"kv_cache", &kv_}, {"step", &step_[a]}},
                         {{"z_next", &z_[1 - a]}, {"step_next", &step_[1 - a]}});
    }
    decode_ = bind(kDecoder, {{"latents", &clip_}}, {{"frames", &decoded_}});
    OrtRunOptions* ro = nullptr;
    check(api_, api_->CreateRunOptions(&ro), "ONNX Runtime run options");
    run_options_ = OrtOwner<OrtRunOptions>(api_, ro);
    window_.assign(size_t(d_.M) * d_.latent(), 0.0f);
    work_.assign(size_t(d_.M + d_.G) * d_.latent(), 0.0f);
}

Stream::Binding Stream::bind(const char* graph, std::initializer_list<std::pair<const char*, const Tensor*>> inputs,
                             std::initializer_list<std::pair<const char*, const Tensor*>> outputs) {
    OrtIoBinding* raw = nullptr;
    check(api_, api_->CreateIoBinding(model_->session(graph), &raw), std::string("ONNX Runtime binding of ") + graph);
    Binding binding(api_, raw);
    for (const auto& [name, tensor] : inputs) {
        check(api_, api_->BindInput(raw, name, tensor->value()), std::string("binding ") + graph + " input " + name);
    }
    for (const auto& [name, tensor] : outputs) {
        check(api_, api_->BindOutput(raw, name, tensor->value()), std::string("binding ") + graph + " output " + name);
    }
    return binding;
}

double Stream::run(const char* graph, const Binding& binding) {
    const double start = now();
    check(api_, api_->RunWithBinding(model_->session(graph), run_options_.get(), binding.get()),
          std::string("ONNX Runtime failed running ") + graph + ".onnx");
    return now() - start;
}

void Stream::reset(uint64_t seed) {
    std::lock_guard<std::mutex> lock(mu_);
    count_ = 0;
    last_timestamp_ns_ = 0;
    generator_.reseed(seed);
}

bool Stream::ready() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_ >= d_.M;
}

void Stream::observe(const vgpt_image& image) {
    std::lock_guard<std::mutex> lock(mu_);
    fit_frame(image, d_.H, d_.W, frame_.f32(), scratch_);
    run(kEncoder, encode_);
    const size_t L = d_.latent();
    if (count_ == d_.M) {  // full: drop the oldest
        std::memmove(window_.data(), window_.data() + L, (d_.M - 1) * L * sizeof(float));
        --count_;
    }
    std::memcpy(window_.data() + count_ * L, latent_.f32(), L * sizeof(float));
    ++count_;
    last_timestamp_ns_ = image.timestamp_ns;
}

PredictResult Stream::predict(int num_clips, const float* noise, size_t noise_count) {
    std::lock_guard<std::mutex> lock(mu_);
    if (num_clips < 1) {
        throw Error(VGPT_INVALID_ARGUMENT, "num_clips=" + std::to_string(num_clips) + ": must be >= 1");
    }
    if (count_ < d_.M) {
        throw Error(VGPT_NOT_READY, "predict needs " + std::to_string(d_.M) + " observed frames (the layout's "
                                    "history), only " + std::to_string(count_) + " so far");
    }
    const size_t L = d_.latent(), clip = size_t(d_.G) * L, frame_bytes = d_.pixels() * 3;
    const size_t need = size_t(num_clips) * clip;
    if (noise) {
        if (noise_count != need) {
            throw Error(VGPT_INVALID_ARGUMENT, "noise has " + std::to_string(noise_count) + " floats; " +
                                                   std::to_string(num_clips) + " clip(s) need num_clips * G * C * h * w = " +
                                                   std::to_string(need));
        }
    } else {
        noise_.resize(need);
        generator_.fill(noise_.data(), need);
        noise = noise_.data();
    }
    out_frames_.resize(size_t(num_clips) * d_.G * frame_bytes);
    out_latents_.resize(need);
    PredictProfile prof;
    const double start = now();
    std::memcpy(work_.data(), window_.data(), size_t(d_.M) * L * sizeof(float));
    for (int k = 0; k < num_clips; ++k) {
        const double t0 = now();
        std::memcpy(history_.f32(), work_.data(), size_t(d_.M) * L * sizeof(float));
        prof.inside += run(kPrefill, prefill_);
        const double t1 = now();
        std::memcpy(z_[0].f32(), noise + k * clip, clip * sizeof(float));
        step_[0].i64()[0] = 0;
        for (int i = 0; i < d_.S; ++i) prof.inside += run(kDenoise, steps_[i & 1]);  // the hot loop: one bound run per step
        const float* z = z_[d_.S & 1].f32();                                          // [1, G, C, h, w]
        std::memcpy(clip_.f32(), z, clip * sizeof(float));
        std::memcpy(out_latents_.data() + k * clip, z, clip * sizeof(float));
        const double t2 = now();
        prof.inside += run(kDecoder, decode_);
        to_uint8(decoded_.f32(), d_.G, d_.H, d_.W, out_frames_.data() + size_t(k) * d_.G * frame_bytes);
        // Autoregression on a copy: the history for the next clip is the newest M of [history, clip].
        std::memcpy(work_.data() + size_t(d_.M) * L, z, clip * sizeof(float));
        std::memmove(work_.data(), work_.data() + clip, size_t(d_.M) * L * sizeof(float));
        const double t3 = now();
        prof.prefill += t1 - t0, prof.denoise += t2 - t1, prof.decode += t3 - t2;
    }
    prof.total = now() - start;
    profile_ = prof;
    return {out_frames_.data(), num_clips * d_.G, out_latents_.data(), out_latents_.size(), last_timestamp_ns_};
}

}  // namespace vgpt
