// The C++ runtime against the Python runtime (runtime/predictor.py over ONNX Runtime): the same
// history frames and the same explicit noise give the same latents and frames.
#include <cmath>

#include "api_helpers.hpp"

namespace {

void parity(const char* name) {
    const auto& c = fixtures::index().at(name);
    vgpt::Model model(c.at("bundle").get<std::string>());
    vgpt::Stream stream(model, 0);
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
    std::printf("parity %s (M=%d G=%d %dx%d, %d steps, %d clips): latents max abs %.3g, frames max %d grey "
                "level(s), %zu of %zu values differ\n",
                name, l.history_frames, l.clip_frames, l.width, l.height, l.steps, c.at("num_clips").get<int>(),
                latent_diff, frame_diff, frames_off, frames.size());
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
