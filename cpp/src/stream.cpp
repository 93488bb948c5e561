#include "stream.hpp"

#include <cstring>

#include "error.hpp"

namespace vgpt {

Stream::Stream(std::shared_ptr<const Model> model, uint64_t seed)
    : model_(std::move(model)), d_(model_->dims()), engine_(model_->engine()), generator_(seed) {
    window_.assign(size_t(d_.M) * d_.latent(), 0.0f);
    work_.assign(size_t(d_.M + d_.G) * d_.latent(), 0.0f);
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

void Stream::set_rolling(bool rolling) {
    std::lock_guard<std::mutex> lock(mu_);
    if (rolling && !engine_->exact_rolling()) {
        throw Error(VGPT_UNSUPPORTED, "the rolling KV cache is the exact rolling window of GPDiT bundles (frame.onnx "
                                      "and ring.onnx); this bundle has none: use the exact mode, or export a model "
                                      "with the lightweight mask");
    }
    if (rolling && !rolling_) {
        for (int i = 0; i < count_; ++i) engine_->push(window_.data() + size_t(i) * d_.latent());
    }
    rolling_ = rolling;
}

void Stream::observe(const vgpt_image& image) {
    std::lock_guard<std::mutex> lock(mu_);
    fit_frame(image, d_.H, d_.W, engine_->frame(), scratch_);
    const float* latent = engine_->encode();
    const size_t L = d_.latent();
    if (count_ == d_.M) {  // full: drop the oldest
        std::memmove(window_.data(), window_.data() + L, (d_.M - 1) * L * sizeof(float));
        --count_;
    }
    std::memcpy(window_.data() + count_ * L, latent, L * sizeof(float));
    ++count_;
    if (rolling_) engine_->push(latent);  // the ring slot of the oldest frame: one frame's work
    last_timestamp_ns_ = image.timestamp_ns;
}

PredictResult Stream::predict(int num_clips, const float* noise, size_t noise_count) {
    std::lock_guard<std::mutex> lock(mu_);
    if (num_clips < 1) {
        throw Error(VGPT_INVALID_ARGUMENT, "num_clips=" + std::to_string(num_clips) + ": must be >= 1");
    }
    // Checked before anything is allocated: frames and latents of every clip, in 64 bits (num_clips is an
    // int and G * (frame + latent bytes) fits 64 bits for any layout a manifest passes).
    const uint64_t per_clip = uint64_t(d_.G) * (uint64_t(d_.pixels()) * 3 + uint64_t(d_.latent()) * sizeof(float));
    if (uint64_t(num_clips) > VGPT_MAX_PREDICTION_BYTES / per_clip) {
        throw Error(VGPT_INVALID_ARGUMENT, "num_clips=" + std::to_string(num_clips) + " would return " +
                                               std::to_string(num_clips) + " x " + std::to_string(per_clip) +
                                               " bytes, more than VGPT_MAX_PREDICTION_BYTES (" +
                                               std::to_string(VGPT_MAX_PREDICTION_BYTES) + "): predict fewer clips "
                                               "per call");
    }
    if (count_ < d_.M) {
        throw Error(VGPT_NOT_READY, "predict needs " + std::to_string(d_.M) + " observed frames (the layout's "
                                    "history), only " + std::to_string(count_) + " so far");
    }
    const size_t L = d_.latent(), clip = size_t(d_.G) * L, frame_bytes = d_.pixels() * 3;
    const size_t need = size_t(num_clips) * clip;
    PredictProfile prof;
    const double start = seconds_now(), inside_before = engine_->inside;
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
    std::memcpy(work_.data(), window_.data(), size_t(d_.M) * L * sizeof(float));
    for (int k = 0; k < num_clips; ++k) {
        const double t0 = seconds_now();
        if (rolling_ && k == 0) {
            engine_->read_window();  // the ring holds the observed window
        } else {
            engine_->prefill(work_.data());  // the first M latents: [1, M, C, h, w]
        }
        const double t1 = seconds_now();
        const float* z = engine_->denoise(noise + k * clip);  // [1, G, C, h, w]
        std::memcpy(out_latents_.data() + k * clip, z, clip * sizeof(float));
        const double t2 = seconds_now();
        const float* decoded = engine_->decode(out_latents_.data() + k * clip);
        to_uint8(decoded, d_.G, d_.H, d_.W, out_frames_.data() + size_t(k) * d_.G * frame_bytes);
        // Autoregression on a copy: the history for the next clip is the newest M of [history, clip].
        std::memcpy(work_.data() + size_t(d_.M) * L, out_latents_.data() + k * clip, clip * sizeof(float));
        std::memmove(work_.data(), work_.data() + clip, size_t(d_.M) * L * sizeof(float));
        const double t3 = seconds_now();
        prof.prefill += t1 - t0, prof.denoise += t2 - t1, prof.decode += t3 - t2;
    }
    prof.total = seconds_now() - start;
    prof.inside = engine_->inside - inside_before;
    profile_ = prof;
    return {out_frames_.data(), num_clips * d_.G, out_latents_.data(), out_latents_.size(), last_timestamp_ns_};
}

}  // namespace vgpt
