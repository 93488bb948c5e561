// Four streams on one model, from four threads, give what one stream gives alone.
#include <atomic>
#include <thread>

#include "api_helpers.hpp"

namespace {

constexpr int kStreams = 4;
constexpr int kClips = 50;

struct Clip {
    std::vector<uint8_t> frames;
    std::vector<float> latents;
    bool operator==(const Clip& o) const { return frames == o.frames && latents == o.latents; }
};

// Observe the case's frames, then alternate: predict one clip with the stream's own noise, observe a
// frame again (the history slides), so every clip starts from a different history and noise.
std::vector<Clip> run(vgpt::Stream& stream, const nlohmann::json& c, uint64_t seed) {
    stream.reset(seed);
    helpers::observe_case(stream, c);
    const fixtures::Array frames = fixtures::load(c.at("observe"));
    const int h = int(frames.shape[1]), w = int(frames.shape[2]);
    const auto* data = reinterpret_cast<const uint8_t*>(frames.bytes.data());
    std::vector<Clip> out;
    for (int k = 0; k < kClips; ++k) {
        const vgpt_prediction p = stream.predict(1);
        out.push_back({{p.frames, p.frames + size_t(p.num_frames) * p.width * p.height * 3},
                       {p.latents, p.latents + p.latents_count}});
        stream.observe(data + (k % frames.shape[0]) * h * w * 3, w, h, size_t(w) * 3);
    }
    return out;
}

}  // namespace

TEST(Concurrency, FourStreamsOnOneModelMatchOneStream) {
    const auto& c = fixtures::index().at("tiny");
    vgpt_model_options options = vgpt::default_options();
    options.intra_op_threads = 2;
    vgpt::Model model(c.at("bundle").get<std::string>(), options);

    std::vector<std::vector<Clip>> expected;
    vgpt::Stream alone(model);
    for (int s = 0; s < kStreams; ++s) expected.push_back(run(alone, c, 100 + s));

    std::vector<std::vector<Clip>> got(kStreams);
    std::vector<std::string> errors(kStreams);
    std::vector<std::thread> threads;
    for (int s = 0; s < kStreams; ++s) {
        threads.emplace_back([&, s] {
            try {
                vgpt::Stream stream(model);
                got[s] = run(stream, c, 100 + s);
            } catch (const std::exception& e) {
                errors[s] = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();
    for (int s = 0; s < kStreams; ++s) {
        ASSERT_EQ(errors[s], "");
        ASSERT_EQ(got[s].size(), size_t(kClips));
        int equal = 0;
        for (int k = 0; k < kClips; ++k) equal += got[s][k] == expected[s][k];
        // Exact: a stream's buffers are its own and ONNX Runtime's CPU kernels split work by the pool
        // size, not by what other runs do at the same time, so concurrency changes no bit.
        EXPECT_EQ(equal, kClips) << "stream " << s;
    }
    std::printf("concurrency: %d streams x %d clips on one model from %d threads, all equal to one stream's\n",
                kStreams, kClips, kStreams);
}

TEST(Concurrency, OneStreamFromManyThreadsIsSerialized) {
    const auto& c = fixtures::index().at("tiny");
    vgpt::Model model(c.at("bundle").get<std::string>());
    vgpt::Stream stream(model, 5);
    helpers::observe_case(stream, c);
    // Two threads predicting on one stream: calls are serialized by the stream, so every prediction is
    // a whole one (its frames count right) and none fails.
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
            for (int k = 0; k < 10; ++k) {
                vgpt_prediction p{};
                p.struct_size = sizeof(p);
                vgpt_status* st = vgpt_stream_predict(stream.get(), 2, &p);
                good += st == nullptr;
                vgpt_status_free(st);
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(good.load(), 20);
}
