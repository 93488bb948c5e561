// vgpt_bench: how long the C++ runtime takes per predicted clip, and how much of it is host work.
//
//   vgpt_bench BUNDLE [--clips N] [--warmup K] [--threads T] [--allow-spinning] [--seed S]
//
// Loads the bundle, creates one stream, observes M frames (a fixed pseudo-random RGB8 pattern at the
// model's size), predicts K clips to warm up, then times N predictions of one clip each and prints one
// JSON object on stdout (vgpt.cli.bench.cpp reads it; its docstring lists the keys). The host
// overhead of a clip is the share of its wall time spent outside ONNX Runtime's run calls.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "error.hpp"
#include "model.hpp"
#include "stream.hpp"

namespace {

struct Args {
    std::string bundle;
    int clips = 5, warmup = 1, threads = 0;
    bool allow_spinning = false;
    uint64_t seed = 0;
};

[[noreturn]] void usage(const std::string& problem) {
    std::fprintf(stderr,
                 "vgpt_bench: %s\nusage: vgpt_bench BUNDLE [--clips N (5)] [--warmup K (1)] [--threads T (0: ONNX "
                 "Runtime's choice)] [--allow-spinning] [--seed S (0)]\n",
                 problem.c_str());
    std::exit(2);
}

int integer(const char* flag, const char* text, int minimum) {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < minimum || v > 1000000) {
        usage(std::string(flag) + " " + text + ": expected an integer >= " + std::to_string(minimum));
    }
    return int(v);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--clips") a.clips = integer("--clips", value(), 1);
        else if (arg == "--warmup") a.warmup = integer("--warmup", value(), 0);
        else if (arg == "--threads") a.threads = integer("--threads", value(), 0);
        else if (arg == "--seed") a.seed = uint64_t(integer("--seed", value(), 0));
        else if (arg == "--allow-spinning") a.allow_spinning = true;
        else if (arg == "-h" || arg == "--help") usage("times the C++ runtime's predictions");
        else if (!arg.empty() && arg[0] == '-') usage("unknown option " + arg);
        else if (a.bundle.empty()) a.bundle = arg;
        else usage("one BUNDLE only (also got " + arg + ")");
    }
    if (a.bundle.empty()) usage("no BUNDLE given");
    return a;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

nlohmann::json bench(const Args& a) {
    vgpt::Options options;
    options.intra_op_threads = a.threads;
    options.allow_spinning = a.allow_spinning;
    auto start = std::chrono::steady_clock::now();
    auto model = vgpt::Model::load(a.bundle, options);
    const double load_seconds = seconds_since(start);
    const vgpt::Dims d = model->dims();
    vgpt::Stream stream(model, a.seed);

    std::vector<uint8_t> pixels(d.pixels() * 3);
    uint32_t state = 12345;  // a small LCG: the frames' content does not change the cost of a clip
    for (uint8_t& p : pixels) p = uint8_t((state = state * 1664525u + 1013904223u) >> 24);
    for (int f = 0; f < d.M; ++f) stream.observe({pixels.data(), d.W, d.H, size_t(d.W) * 3, VGPT_PIXEL_RGB8, f});

    for (int k = 0; k < a.warmup; ++k) stream.predict(1, nullptr, 0);
    std::vector<double> clip, step, prefill, decode, overhead;
    for (int k = 0; k < a.clips; ++k) {
        start = std::chrono::steady_clock::now();
        stream.predict(1, nullptr, 0);
        const double wall = seconds_since(start);
        const vgpt::PredictProfile& p = stream.profile();
        clip.push_back(wall);
        step.push_back(p.denoise / d.S);
        prefill.push_back(p.prefill);
        decode.push_back(p.decode);
        overhead.push_back((wall - p.inside) / wall);
    }
    return {
        {"runtime", "cpp"},
        {"bundle", a.bundle},
        {"layout", {{"history", d.M}, {"clip", d.G}, {"height", d.H}, {"width", d.W}, {"latent_channels", d.C},
                    {"latent_height", d.h}, {"latent_width", d.w}, {"steps", d.S}}},
        {"threads", a.threads},
        {"allow_spinning", a.allow_spinning},
        {"warmup", a.warmup},
        {"clips", a.clips},
        {"load_seconds", load_seconds},
        {"clip_seconds", {{"median", median(clip)}, {"min", *std::min_element(clip.begin(), clip.end())}, {"runs", clip}}},
        {"step_seconds", median(step)},
        {"prefill_seconds", median(prefill)},
        {"decode_seconds", median(decode)},
        {"host_overhead", median(overhead)},
    };
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    try {
        std::cout << bench(args).dump(1) << std::endl;
    } catch (const vgpt::Error& e) {
        std::fprintf(stderr, "vgpt_bench: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vgpt_bench: internal error: %s\n", e.what());
        return 1;
    }
    return 0;
}
