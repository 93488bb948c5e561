// The C++ runtime against the Python runtime (runtime/predictor.py over ONNX Runtime): the same
// history frames and the same explicit noise give the same latents and frames.
#include <cmath>

#include "api_helpers.hpp"

namespace {

void parity(const char* name) {
    const auto& c = fixtures::index().at(name);
    vgpt::Model model(c.at("bundle").get<std::string>());
    vgpt::Stream stream(model, 0);
    if (c.value("mode", "exact") == "rolling") stream.set_kv_mode(VGPT_KV_ROLLING);
    helpers::observe_case(stream, c);
    ASSERT_TRUE(stream.ready());
    const std::vector<float> noise = fixtures::load(c.at("noise")).as<float>();
    const std::vector<float> latents = fixtures::load(c.at("latents")).as<float>();
    const std::vector<uint8_t> frames = fixtures::load(c.at("frames")).as<uint8_t>();
    const vgpt_prediction p = stream.predict(c.at("num_clips").get<int>(), noise);
    ASSERT_EQ(p.latents_count, latents.size());
    ASSERT_EQ(size_t(p.num_frames) * p.width * p.height * 3, frames.size());
    float latent_diff = 0;
    for (size_t i = 0; i < latents.size(); ++i) latent_diff = std::max(latent_diff, std::abs(p.latents[i] - latents[i]));
    int frame_diff = 0;
    size_t frames_off = 0;
    for (size_t i = 0; i < frames.size(); ++i) {
        const int d = std::abs(int(p.frames[i]) - int(frames[i]));
        frame_diff = std::max(frame_diff, d);
        frames_off += d != 0;
    }
    const vgpt_layout l = model.layout();
    std::printf("parity %s (%s, M=%d G=%d %dx%d, %d steps, %d clips): latents max abs %.3g, frames max %d grey "
                "level(s), %zu of %zu values differ\n",
                name, c.value("mode", "exact").c_str(), l.history_frames, l.clip_frames, l.width, l.height, l.steps,
                c.at("num_clips").get<int>(), latent_diff, frame_diff, frames_off, frames.size());
    // Same graphs, same ONNX Runtime library, same inputs: only the preprocessing (bit-identical on
    // AVX2 machines, a few float ulps elsewhere) could differ, and 50 steps amplify that little: 1e-5.
    EXPECT_LE(latent_diff, 1e-5f);
    // A latent difference of 1e-5 can still carry a decoded value across a rounding boundary of
    // to_uint8: one grey level.
    EXPECT_LE(frame_diff, 1);
}

}  // namespace

TEST(Parity, BundledDefaultModel) { parity("bundled"); }
TEST(Parity, TinyModel) { parity("tiny"); }

// A distilled student's bundle: one branch at its own K-step table, the same runtime loop.
TEST(Parity, TinyStudent) { parity("student"); }

TEST(Parity, GpditExactRollingWindow) { parity("gpdit"); }

namespace {

// A frame of deterministic pseudo-random pixels, [h, w, 3] RGB8.
std::vector<uint8_t> noise_frame(uint32_t seed, int w, int h) {
    std::vector<uint8_t> px(size_t(w) * h * 3);
    for (auto& p : px) p = uint8_t((seed = seed * 1664525u + 1013904223u) >> 24);
    return px;
}

}  // namespace

// GPDiT's rolling window after 1,000 single-frame shifts against a fresh computation of the same window:
// a stream in the exact mode that observes only the newest M frames (prefill of them), with the same noise.
TEST(Rolling, GpditAfter1000ShiftsEqualsAFreshWindow) {
    const auto& c = fixtures::index().at("gpdit");
    vgpt::Model model(c.at("bundle").get<std::string>());
    const vgpt_layout l = model.layout();
    vgpt::Stream rolling(model, 0), fresh(model, 0);
    rolling.set_kv_mode(VGPT_KV_ROLLING);
    const int w = 40, h = 30, total = l.history_frames + 1000;
    for (int f = 0; f < total; ++f) {
        const std::vector<uint8_t> px = noise_frame(uint32_t(f), w, h);
        rolling.observe(px.data(), w, h, size_t(w) * 3);
        if (f >= total - l.history_frames) fresh.observe(px.data(), w, h, size_t(w) * 3);
    }
    const std::vector<float> noise = fixtures::load(c.at("noise")).as<float>();
    const int clips = c.at("num_clips").get<int>();
    const vgpt_prediction a = fresh.predict(clips, noise);
    const std::vector<float> want(a.latents, a.latents + a.latents_count);
    const vgpt_prediction b = rolling.predict(clips, noise);
    ASSERT_EQ(b.latents_count, want.size());
    float diff = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        diff = std::max(diff, std::abs(b.latents[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    std::printf("gpdit rolling after 1000 shifts vs a fresh window: latents max abs %.3g, relative %.3g\n", diff,
                diff / scale);
    // Each frame's keys/values computed alone at its canonical place and rotated to its window place when
    // read, against prefill of the window: fp32 round-off (~3e-7), nothing accumulated over the shifts,
    // carried through the S steps and the second clip's prefill. Drift or a wrong slot shows at 1e-3.
    EXPECT_LE(diff / scale, 1e-5f);
}

TEST(Rolling, AVideoGptBundleHasNoRollingMode) {
    vgpt::Model model(fixtures::index().at("tiny").at("bundle").get<std::string>());
    vgpt::Stream stream(model, 0);
    try {
        stream.set_kv_mode(VGPT_KV_ROLLING);
        FAIL() << "the tiny (Video-GPT) bundle has no frame.onnx and ring.onnx";
    } catch (const vgpt::Exception& e) {
        EXPECT_EQ(e.code(), VGPT_UNSUPPORTED);
        EXPECT_NE(std::string(e.what()).find("exact rolling window of GPDiT bundles"), std::string::npos);
    }
    EXPECT_THROW(stream.set_kv_mode(vgpt_kv_mode(7)), vgpt::Exception);
}
