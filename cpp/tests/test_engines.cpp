// The TensorRT backend's TensorRT-free decisions (cpp/src/engines.cpp), tested in every build: reading
// engines.json, refusing another TensorRT version, another GPU, changed plans or sources, the device
// device buffers and the ping-pong of the two step contexts.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engines.hpp"
#include "error.hpp"
#include "fixtures.hpp"
#include "sha256.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The message of the vgpt::Error that `body` throws, after checking its code.
template <typename F>
std::string error_of(vgpt_code code, F&& body) {
    try {
        body();
    } catch (const vgpt::Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no vgpt::Error thrown";
    return "";
}

vgpt::TensorSpec spec(const std::string& name, std::vector<int64_t> shape, const std::string& dtype = "float32") {
    return {name, std::move(shape), dtype};
}

// The binding plan vgpt-export writes for these four graphs (export/registry.py).
json plan_json(const vgpt::Manifest& m) {
    auto t = [](const char* buffer) { return json{{"buffer", buffer}}; };
    auto buffer = [&](const char* name, const char* graph, const char* tensor) {
        const vgpt::TensorSpec& s = m.graphs.at(graph).tensor(tensor);
        return json{{"name", name}, {"shape", s.shape}, {"dtype", s.dtype}};
    };
    json steps = json::array();
    for (int a = 0; a < 2; ++a) {
        const std::string z = "z" + std::to_string(a), step = "step" + std::to_string(a);
        const std::string z_next = "z" + std::to_string(1 - a), step_next = "step" + std::to_string(1 - a);
        steps.push_back({{"inputs", {{"z", t(z.c_str())}, {"kv_cache", t("kv")}, {"step", t(step.c_str())}}},
                         {"outputs", {{"z_next", t(z_next.c_str())}, {"step_next", t(step_next.c_str())}}}});
    }
    return {{"buffers",
             {buffer("frame", "encoder", "frames"), buffer("latent", "encoder", "latents"),
              buffer("history", "prefill", "history"), buffer("kv", "prefill", "kv_cache"), buffer("z0", "denoise", "z"),
              buffer("z1", "denoise", "z_next"), buffer("step0", "denoise", "step"),
              buffer("step1", "denoise", "step_next"), buffer("clip", "decoder", "latents"),
              buffer("frames_out", "decoder", "frames")}},
            {"phases",
             {{"encode", {{"graph", "encoder"}, {"bindings", {{{"inputs", {{"frames", t("frame")}}},
                                                               {"outputs", {{"latents", t("latent")}}}}}}}},
              {"prefill", {{"graph", "prefill"}, {"bindings", {{{"inputs", {{"history", t("history")}}},
                                                                {"outputs", {{"kv_cache", t("kv")}}}}}}}},
              {"denoise", {{"graph", "denoise"}, {"bindings", steps}}},
              {"decode", {{"graph", "decoder"}, {"bindings", {{{"inputs", {{"latents", t("clip")}}},
                                                               {"outputs", {{"frames", t("frames_out")}}}}}}}}}}};
}

// A bundle manifest of M=2, G=3, C=4, h=w=2, 16x16 pixels, a [2, 1, 8, 24, 16] float16 KV cache.
vgpt::Manifest bundle() {
    vgpt::Manifest m;
    m.root = "/bundle";
    m.layout_name = "m2_g3";
    m.folder = "/bundle/m2_g3";
    m.steps = 3;
    const std::vector<int64_t> z = {1, 3, 4, 2, 2}, kv = {2, 1, 8, 24, 16};
    m.graphs["encoder"] = {"encoder", "encoder.onnx", {spec("frames", {1, 3, 16, 16})}, {spec("latents", {1, 4, 2, 2})},
                           {{"encoder.onnx", 10, "e0"}}};
    m.graphs["prefill"] = {"prefill", "prefill.onnx", {spec("history", {1, 2, 4, 2, 2})},
                           {spec("kv_cache", kv, "float16")}, {{"prefill.onnx", 10, "p0"}}};
    m.graphs["denoise"] = {"denoise", "denoise.onnx",
                           {spec("z", z), spec("kv_cache", kv, "float16"), spec("step", {1}, "int64")},
                           {spec("z_next", z), spec("step_next", {1}, "int64")},
                           {{"denoise.onnx", 10, "d0"}, {"denoise.onnx.data", 99, "d1"}}};
    m.graphs["decoder"] = {"decoder", "decoder.onnx", {spec("latents", {3, 4, 2, 2})}, {spec("frames", {3, 3, 16, 16})},
                           {{"decoder.onnx", 10, "c0"}}};
    m.layout.history_frames = 2;
    m.plan = vgpt::parse_plan(plan_json(m).dump());
    return m;
}

struct EnginesDir {
    fs::path path;
    json manifest;
    EnginesDir() {
        std::string tmpl = (fs::temp_directory_path() / "vgpt-engines-XXXXXX").string();
        path = mkdtemp(tmpl.data());
        manifest = {{"format", "vgpt-tensorrt-engines"},
                    {"tensorrt_version", "10.7.0.post1"},
                    {"gpu", {{"name", "NVIDIA H200"}, {"compute_capability", {9, 0}}}},
                    {"layout", "m2_g3"},
                    {"bundle", "/bundle"},
                    {"bundle_precision", "fp32"},
                    {"builder", {{"precision", "fp16"}}},
                    {"sampler", {{"steps", 3}}},
                    {"plans", json::object()},
                    {"source_graphs_sha256", {{"encoder", "e0"}, {"prefill", "p0"}, {"denoise", "d0"}, {"decoder", "c0"}}}};
        for (const char* g : {"encoder", "prefill", "denoise", "decoder"}) {
            const std::string file = std::string(g == std::string("denoise") ? "model" : g) + ".plan";
            std::ofstream(path / file) << "plan of " << g;
            manifest["plans"][g] = {{"file", file}, {"bytes", fs::file_size(path / file)},
                                    {"sha256", vgpt::sha256_file((path / file).string())}};
        }
        write();
    }
    ~EnginesDir() { fs::remove_all(path); }
    void write() const { std::ofstream(path / "engines.json") << manifest.dump(1); }
    vgpt::EngineManifest read() const { return vgpt::read_engine_manifest(path.string()); }
};

const vgpt::TensorRTHost kH200 = vgpt::tensorrt_host(100700, "NVIDIA H200", 9, 0);

TEST(Engines, ReadsTheManifestAndFindsItsFolder) {
    EnginesDir dir;
    const vgpt::EngineManifest m = dir.read();
    EXPECT_EQ(m.tensorrt_version, "10.7.0.post1");
    EXPECT_EQ(m.gpu_name, "NVIDIA H200");
    EXPECT_EQ(m.capability_major * 10 + m.capability_minor, 90);
    EXPECT_EQ(m.layout, "m2_g3");
    EXPECT_EQ(m.steps, 3);
    EXPECT_EQ(m.plans.at("denoise").file, "model.plan");
    EXPECT_EQ(vgpt::find_engines(dir.path.string()), dir.path.string());
    EXPECT_EQ(vgpt::find_engines((dir.path / "model.plan").string()), dir.path.string());  // vgpt-run --engine model.plan
    EXPECT_NE(error_of(VGPT_NOT_FOUND, [&] { vgpt::find_engines(fs::temp_directory_path().string()); })
                  .find("has no engines.json: build engines with vgpt-build"),
              std::string::npos);
}

TEST(Engines, RefusesMalformedManifests) {
    EnginesDir dir;
    dir.manifest["format"] = "vgpt-onnx-bundle";
    dir.write();
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { dir.read(); }).find("is not a vgpt engine manifest"), std::string::npos);
    dir.manifest["format"] = "vgpt-tensorrt-engines";
    dir.manifest.erase("gpu");
    dir.write();
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { dir.read(); }).find("lacks a field"), std::string::npos);
    EnginesDir other;
    other.manifest["plans"].erase("decoder");
    other.write();
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { other.read(); }).find("lists no decoder engine"), std::string::npos);
}

TEST(Engines, TensorRTVersionIsMajorMinorPatch) {
    EnginesDir dir;
    const vgpt::TensorRTHost host = vgpt::tensorrt_host(100700, "NVIDIA H200", 9, 0);
    EXPECT_EQ(host.major * 10000 + host.minor * 100 + host.patch, 100700);
    vgpt::check_engine_host(dir.read(), host);  // 10.7.0.post1 was built by 10.7.0
    for (const char* other : {"10.7.1", "10.8.0", "8.6.1.6", "10.7", "ten"}) {
        dir.manifest["tensorrt_version"] = other;
        dir.write();
        const std::string msg = error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_engine_host(dir.read(), host); });
        EXPECT_NE(msg.find(std::string("built with TensorRT ") + other + ", this is TensorRT 10.7.0: rebuild them "
                           "with vgpt-build on this machine"), std::string::npos) << msg;
    }
}

TEST(Engines, RefusesAnotherGpu) {
    EnginesDir dir;
    for (const vgpt::TensorRTHost& other : {vgpt::tensorrt_host(100700, "NVIDIA L4", 8, 9),
                                            vgpt::tensorrt_host(100700, "NVIDIA H200", 9, 1)}) {
        const std::string msg = error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_engine_host(dir.read(), other); });
        EXPECT_NE(msg.find("were built for NVIDIA H200 (sm 9.0), this is " + other.gpu_name), std::string::npos) << msg;
        EXPECT_NE(msg.find("rebuild them with vgpt-build on this GPU"), std::string::npos);
    }
}

TEST(Engines, RefusesChangedPlanFiles) {
    EnginesDir dir;
    vgpt::check_plan_files(dir.read(), true);
    std::ofstream(dir.path / "model.plan", std::ios::binary | std::ios::in | std::ios::out) << "PLAN";  // same size
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan_files(dir.read(), true); })
                  .find("model.plan does not match its sha256 in engines.json"),
              std::string::npos);
    vgpt::check_plan_files(dir.read(), false);  // sizes only
    std::ofstream(dir.path / "prefill.plan", std::ios::app) << "more";
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan_files(dir.read(), false); })
                  .find("prefill.plan has 19 bytes, the manifest says 15: truncated or replaced"),
              std::string::npos);
    fs::remove(dir.path / "encoder.plan");
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan_files(dir.read(), false); })
                  .find("encoder.plan is missing (encoder engine)"),
              std::string::npos);
}

TEST(Engines, RefusesEnginesOfOtherSourceGraphs) {
    EnginesDir dir;
    vgpt::check_sources(dir.read(), bundle());
    dir.manifest["source_graphs_sha256"]["denoise"] = "d1";  // the external data's hash, not the graph's
    dir.write();
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_sources(dir.read(), bundle()); })
                  .find("the denoise engine in " + dir.path.string() + " was not built from "
                        "/bundle/m2_g3/denoise.onnx as the bundle holds it now"),
              std::string::npos);
}

TEST(Engines, DeviceBuffersShareTheKvCacheAndPingPongTheSteps) {
    const vgpt::Manifest m = bundle();
    vgpt::check_plan(m.plan, m.graphs, 2, "/bundle/manifest.json");
    const vgpt::DeviceBuffers buffers = vgpt::device_buffers(m);
    ASSERT_EQ(buffers.buffers.size(), 10u);
    const vgpt::DeviceBuffer& kv = buffers.buffer("kv");
    EXPECT_EQ(kv.bytes, 2u * 1 * 8 * 24 * 16 * 2);  // float16
    ASSERT_EQ(kv.bindings.size(), 1u);               // prefill's output; the steps' input is in their sets
    EXPECT_EQ(kv.bindings[0], (std::pair<std::string, std::string>{"prefill", "kv_cache"}));
    EXPECT_EQ(buffers.buffer("z0").bytes, 3u * 4 * 2 * 2 * 4);
    EXPECT_EQ(buffers.buffer("step1").bytes, 8u);
    EXPECT_EQ(buffers.buffer("frames_out").bytes, 3u * 3 * 16 * 16 * 4);
    size_t total = 0;
    for (const auto& b : buffers.buffers) total += b.bytes;
    EXPECT_EQ(buffers.total_bytes(), total);
    // Step i reads set i % 2 and writes the other: what one writes, the next reads.
    for (const auto& [in, out] : {std::pair<const char*, const char*>{"z", "z_next"}, {"step", "step_next"}}) {
        EXPECT_EQ(buffers.steps[0].at(out), buffers.steps[1].at(in));
        EXPECT_EQ(buffers.steps[1].at(out), buffers.steps[0].at(in));
        EXPECT_NE(buffers.steps[0].at(in), buffers.steps[0].at(out));
    }
    EXPECT_EQ(buffers.steps[0].at("kv_cache"), "kv");
    EXPECT_EQ(buffers.steps[1].at("kv_cache"), "kv");
    // Where the clip is after S steps: step S - 1 wrote set S % 2's z (the bundle has 3 steps).
    EXPECT_EQ(m.plan.result(50), "z0");
    EXPECT_EQ(m.plan.result(3), "z1");
    EXPECT_EQ(buffers.io.result, "z1");
    EXPECT_EQ(buffers.io.noise, "z0");
    EXPECT_EQ(buffers.io.frames, "frames_out");
    EXPECT_NE(error_of(VGPT_INTERNAL, [&] { buffers.buffer("nope"); }).find("no device buffer named nope"),
              std::string::npos);
}

TEST(Engines, OneAlignedActivationBlockServesEveryContext) {
    EXPECT_EQ(vgpt::activation_bytes({5000, 3000, 7000, 1000}), 7168u);  // the largest, to 256 bytes
    EXPECT_EQ(vgpt::activation_bytes({7168, 0}), 7168u);
    EXPECT_EQ(vgpt::activation_bytes({0, 0}), 256u);  // never a zero-byte block without an address
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [] { vgpt::activation_bytes({-1}); }).find("-1 bytes"), std::string::npos);
}

TEST(Engines, ThePlanRefusesKvCachesThatDisagree) {
    vgpt::Manifest m = bundle();
    m.graphs["denoise"].inputs[1].dtype = "float32";
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan(m.plan, m.graphs, 2, "/bundle/manifest.json"); })
                  .find("phase 'denoise' binding 0: denoise's kv_cache is float32 [2, 1, 8, 24, 16], bound to kv: "
                        "float16 [2, 1, 8, 24, 16]"),
              std::string::npos);
}

TEST(Engines, ThePlanRefusesStepsThatDoNotFeedEachOther) {
    vgpt::Manifest m = bundle();
    std::swap(m.plan.phases["denoise"].bindings[0].inputs["step"], m.plan.phases["denoise"].bindings[0].outputs["step_next"]);
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan(m.plan, m.graphs, 2, "/bundle/manifest.json"); })
                  .find("binding 0's step_next is not binding 1's step: the steps must feed each other"),
              std::string::npos);
    m = bundle();
    m.plan.phases.erase("decode");
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_plan(m.plan, m.graphs, 2, "/bundle/manifest.json"); })
                  .find("lacks the phases ['decode']"),
              std::string::npos);
}

TEST(Engines, EngineTensorsMustMatchTheBundle) {
    const vgpt::Manifest m = bundle();
    const vgpt::TensorSpec& z = m.graphs.at("denoise").inputs[0];
    vgpt::check_engine_tensor("denoise", z, "float32", {1, 3, 4, 2, 2});
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_engine_tensor("denoise", z, "float16", {1, 3, 4, 2, 2}); })
                  .find("the denoise engine's 'z' is float16 [1, 3, 4, 2, 2], the bundle's graph says float32"),
              std::string::npos);
    EXPECT_NE(error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_engine_tensor("denoise", z, "float32", {1, 4, 4, 2, 2}); })
                  .find("rebuild them with vgpt-build on this machine from this bundle"),
              std::string::npos);
}

}  // namespace

// The engine cases of the tamper fixture (tests/cpp_runtime/tamper.py ENGINE_CASES): every altered engines
// folder is refused by check_engine_folder, what vgpt_model_load runs before TensorRT reads a plan, as
// tests/cpp_runtime/test_tamper.py holds the Python backend's check_engine_folder to the same cases.
TEST(Engines, TheTamperFixturesEngineFoldersAreRefusedAsPythonRefusesThem) {
    const json& e = fixtures::index().at("engine_tamper");
    const json& h = e.at("host");
    int major = 0, minor = 0, patch = 0;
    const std::string version = h.at("tensorrt_version");
    ASSERT_EQ(std::sscanf(version.c_str(), "%d.%d.%d", &major, &minor, &patch), 3);
    const vgpt::TensorRTHost host = vgpt::tensorrt_host(major * 10000 + minor * 100 + patch, h.at("gpu"),
                                                        h.at("capability").at(0), h.at("capability").at(1));
    const std::string bundle_root = fixtures::folder() + "/" + e.at("bundle").get<std::string>();
    ASSERT_GE(e.at("cases").size(), 10u);
    for (const json& c : e.at("cases")) {
        const std::string name = c.at("name"), folder = fixtures::folder() + "/" + c.at("engines").get<std::string>();
        if (c.at("cpp").is_null()) {  // the whole folder: accepted, with its bundle's layout
            const vgpt::CheckedEngines ok = vgpt::check_engine_folder(folder, host, true, bundle_root);
            EXPECT_EQ(ok.engines.layout, ok.bundle.layout_name) << name;
            continue;
        }
        const std::string message =
            error_of(VGPT_BAD_BUNDLE, [&] { vgpt::check_engine_folder(folder, host, true, bundle_root); });
        EXPECT_NE(message.find(c.at("cpp").get<std::string>()), std::string::npos) << name << ": " << message;
    }
}

