// One camera's state over a shared Model: the history window of the newest M latents, the noise
// generator, and its own Engine (the backend's buffers, bindings or contexts, made once at creation).
//
// The exact mode of runtime/predictor.py: every predicted clip runs the history through prefill, then
// the S denoising steps, then the decoder; each predicted clip joins a copy of the history for the next.
// The rolling mode (GPDiT bundles only, equally exact): every observed frame runs alone into the engine's
// ring of the newest M frames, and the first predicted clip reads the ring instead of running prefill.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "frames.hpp"
#include "model.hpp"
#include "noise.hpp"

namespace vgpt {

// Where the last predict call's time went, in wall seconds (steady clock): the tools/bench.cpp
// figures. `inside` is the part spent inside the backend's run calls; the rest of `total` is host work
// (copies, noise, the uint8 conversion, the loop itself).
struct PredictProfile {
    double total = 0, prefill = 0, denoise = 0, decode = 0, inside = 0;
};

struct PredictResult {
    const uint8_t* frames;
    int num_frames;
    const float* latents;
    size_t latents_count;
    int64_t history_timestamp_ns;
};

class Stream {
public:
    Stream(std::shared_ptr<const Model> model, uint64_t seed);
    void reset(uint64_t seed);
    void observe(const vgpt_image& image);  // image already checked
    bool ready();
    // Rolling: VGPT_UNSUPPORTED unless the engine has the exact rolling window; the frames already observed
    // enter the ring at once.
    void set_rolling(bool rolling);
    // noise: num_clips * G * C * h * w floats, or nullptr for the stream's generator.
    PredictResult predict(int num_clips, const float* noise, size_t noise_count);
    // The last predict call's; read it on the thread that called predict, before the next call.
    const PredictProfile& profile() const { return profile_; }

private:
    std::shared_ptr<const Model> model_;  // declared before engine_: outlives it
    Dims d_;
    std::unique_ptr<Engine> engine_;
    std::mutex mu_;  // one call at a time on this stream

    std::vector<float> window_;  // the newest `count_` (<= M) observed latents, oldest first: [M, C, h, w]
    int count_ = 0;
    bool rolling_ = false;
    int64_t last_timestamp_ns_ = 0;
    std::vector<float> work_;    // a prediction's history: [M + G, C, h, w], the first M in use
    std::vector<float> noise_;   // the generator's draws for one predict call
    NormalNoise generator_;
    FrameScratch scratch_;
    std::vector<uint8_t> out_frames_;  // returned views: valid until the next call on the stream
    std::vector<float> out_latents_;
    PredictProfile profile_;
};

}  // namespace vgpt
