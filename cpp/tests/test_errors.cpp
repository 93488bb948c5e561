// Every user-facing error: its code and the part of its message that tells what to do.
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "api_helpers.hpp"

namespace {

using nlohmann::json;

struct Failure {
    vgpt_code code;
    std::string message;
};

Failure load(const std::string& path, const vgpt_model_options* options = nullptr) {
    vgpt_model* model = reinterpret_cast<vgpt_model*>(0x1);  // must be reset to NULL on failure
    vgpt_status* st = vgpt_model_load(path.c_str(), options, &model);
    Failure f{vgpt_status_code(st), vgpt_status_message(st)};
    vgpt_status_free(st);
    EXPECT_EQ(model == nullptr, f.code != VGPT_OK);
    vgpt_model_free(model);
    return f;
}

#define EXPECT_FAILURE(failure, want_code, fragment)                             \
    do {                                                                         \
        const Failure f_ = (failure);                                            \
        EXPECT_EQ(f_.code, want_code) << f_.message;                             \
        EXPECT_NE(f_.message.find(fragment), std::string::npos) << f_.message;   \
    } while (0)

json read_json(const std::filesystem::path& p) {
    std::ifstream in(p);
    return json::parse(in);
}

// An edited manifest written as format 1 (which predates manifest_sha256), so that the checks after the
// manifest's own hash are reached; test_tamper.cpp covers the hash itself.
void write_json(const std::filesystem::path& p, json j) {
    j.erase("manifest_sha256");
    const int version = j.value("format_version", 1);
    if (version == 2 || version == 3) j["format_version"] = 1;  // a newer one stays, to be refused as newer
    std::ofstream(p) << j.dump(1);
}

json& graphs(json& manifest) { return manifest["layouts"][0]["graphs"]; }

std::string tiny_graph(const std::filesystem::path& bundle, const char* graph) {
    json m = read_json(bundle / "manifest.json");
    return (bundle / m["layouts"][0]["name"].get<std::string>() / graphs(m)[graph]["file"].get<std::string>()).string();
}

}  // namespace

TEST(Errors, MissingBundle) {
    EXPECT_FAILURE(load("/nonexistent/bundle"), VGPT_NOT_FOUND, "does not exist");
    helpers::TempDir dir;
    EXPECT_FAILURE(load(dir.path.string()), VGPT_NOT_FOUND, "no manifest.json at or above");
}

TEST(Errors, CorruptedGraphFailsItsHash) {
    helpers::TempDir dir;
    const auto bundle = helpers::copy_tiny(dir);
    const std::string denoise = tiny_graph(bundle, "denoise");
    {
        std::fstream f(denoise, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(100);
        char byte = char(f.get());
        f.seekp(100);
        f.put(char(byte ^ 0x5a));
    }
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "does not match the manifest's sha256");
    // Without the hash check a flipped byte can pass unnoticed (one in a name or in the metadata loads
    // fine): the reason every graph's sha256 is checked by default. It must not crash either way.
    vgpt_model_options o = vgpt::default_options();
    o.verify_hashes = 0;
    const Failure unchecked = load(bundle.string(), &o);
    std::printf("corrupted graph loaded without the hash check: status code %d\n", int(unchecked.code));

    std::filesystem::resize_file(denoise, 1000);
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "truncated or replaced");
    std::filesystem::remove(denoise);
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "is missing from the bundle");
}

TEST(Errors, ManifestShapeDisagreesWithGraph) {
    helpers::TempDir dir;
    const auto bundle = helpers::copy_tiny(dir);
    json m = read_json(bundle / "manifest.json");
    // The KV cache one token longer on both sides and in the binding plan: consistent in the manifest, not
    // with the graphs.
    for (const char* g : {"prefill", "denoise", "append"}) {
        for (const char* side : {"inputs", "outputs"}) {
            for (json& t : graphs(m)[g][side]) {
                if (t["shape"].size() == 6) t["shape"][4] = t["shape"][4].get<int>() + 1;  // kv_cache, kv_next
            }
        }
    }
    for (json& b : m["layouts"][0]["bindings"]["buffers"]) {
        if (b["name"] == "kv" || b["name"] == "kv_alt") b["shape"][4] = b["shape"][4].get<int>() + 1;
    }
    write_json(bundle / "manifest.json", m);
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "in the graph, the manifest says");

    json layout_wrong = read_json(bundle / "manifest.json");
    graphs(layout_wrong)["decoder"]["outputs"][0]["shape"][2] = 7;
    write_json(bundle / "manifest.json", layout_wrong);
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "needs float32");

    std::ofstream(bundle / "manifest.json") << "{ not json";
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "is not valid JSON");
}

TEST(Errors, ManifestVersionsAndLayouts) {
    helpers::TempDir dir;
    const auto bundle = helpers::copy_tiny(dir);
    json m = read_json(bundle / "manifest.json");
    vgpt_model_options o = vgpt::default_options();
    o.layout = "m9-g9-1x1";
    EXPECT_FAILURE(load(bundle.string(), &o), VGPT_BAD_BUNDLE, "has no layout 'm9-g9-1x1'");

    json newer = m;
    newer["versions"]["onnxruntime"] = "99.0.0";
    write_json(bundle / "manifest.json", newer);
    EXPECT_FAILURE(load(bundle.string()), VGPT_RUNTIME_LIBRARY, "newer than the loaded");

    json format = m;
    format["format_version"] = 4;
    write_json(bundle / "manifest.json", format);
    EXPECT_FAILURE(load(bundle.string()), VGPT_BAD_BUNDLE, "exported by a newer vgpt");
}

TEST(Errors, OnnxRuntimeLibrary) {
    const std::string bundle = fixtures::index().at("tiny").at("bundle");
    vgpt_model_options o = vgpt::default_options();
    o.ort_library = "/nonexistent/libonnxruntime.so.1";
    EXPECT_FAILURE(load(bundle, &o), VGPT_RUNTIME_LIBRARY, "cannot load ONNX Runtime from /nonexistent");
    o.ort_library = "libm.so.6";
    EXPECT_FAILURE(load(bundle, &o), VGPT_RUNTIME_LIBRARY, "is not an ONNX Runtime library");
    const std::string fake = VGPT_FAKE_ORT;  // built next to the tests
    o.ort_library = fake.c_str();
    EXPECT_FAILURE(load(bundle, &o), VGPT_RUNTIME_LIBRARY, "ONNX Runtime 1.10.0 at " + fake + " is too old");
}

TEST(Errors, Options) {
    const std::string bundle = fixtures::index().at("tiny").at("bundle");
    vgpt_model_options o = vgpt::default_options();
    o.backend = VGPT_BACKEND_TENSORRT;
    EXPECT_FAILURE(load(bundle, &o), VGPT_UNSUPPORTED, "no TensorRT backend");
    o = vgpt::default_options();
    const int seven = 7;
    std::memcpy(&o.backend, &seven, sizeof(seven));
    EXPECT_FAILURE(load(bundle, &o), VGPT_INVALID_ARGUMENT, "options->backend 7");
    o = vgpt::default_options();
    o.struct_size = 0;
    EXPECT_FAILURE(load(bundle, &o), VGPT_INVALID_ARGUMENT, "vgpt_model_options_init");
    o = vgpt::default_options();
    o.intra_op_threads = -2;
    EXPECT_FAILURE(load(bundle, &o), VGPT_INVALID_ARGUMENT, "intra_op_threads -2");
    vgpt_status* st = vgpt_model_load(bundle.c_str(), nullptr, nullptr);
    EXPECT_EQ(vgpt_status_code(st), VGPT_INVALID_ARGUMENT);
    vgpt_status_free(st);
    // An older caller's shorter struct: the fields it has, our defaults for the rest.
    o = vgpt::default_options();
    o.struct_size = offsetof(vgpt_model_options, ort_library);
    o.layout = "ignored: beyond the caller's struct";
    EXPECT_FAILURE(load(bundle, &o), VGPT_OK, "");
}

TEST(Errors, StreamCalls) {
    const auto& c = fixtures::index().at("tiny");
    vgpt::Model model(c.at("bundle").get<std::string>());
    const vgpt_layout l = model.layout();
    vgpt::Stream stream(model, 1);
    auto code_and_message = [](vgpt_status* st) {
        Failure f{vgpt_status_code(st), vgpt_status_message(st)};
        vgpt_status_free(st);
        return f;
    };
    vgpt_prediction p{};
    p.struct_size = sizeof(p);
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict(stream.get(), 1, &p)), VGPT_NOT_READY,
                   "predict needs " + std::to_string(l.history_frames) + " observed frames");
    uint8_t pixels[16 * 16 * 4] = {};
    vgpt_image bad{pixels, 16, 16, 16 * 3 - 1, VGPT_PIXEL_RGB8, 0};
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT,
                   "stride 47 bytes is less than a row");
    bad = {pixels, 16, 0, 48, VGPT_PIXEL_RGB8, 0};
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT, "16x0 px");
    bad = {pixels, 16, 16, 64, VGPT_PIXEL_RGB8, 0};
    const int three = 3;  // what a C caller may store in the enum field
    std::memcpy(&bad.format, &three, sizeof(three));
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT, "image format 3");
    bad = {nullptr, 16, 16, 48, VGPT_PIXEL_RGB8, 0};
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT, "data is NULL");
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), nullptr)), VGPT_INVALID_ARGUMENT, "image is NULL");
    // Sizes whose byte counts overflow are refused before anything is allocated (UBSan watches the rest).
    bad = {pixels, INT_MAX, INT_MAX, SIZE_MAX, VGPT_PIXEL_RGB8, 0};
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT,
                   "VGPT_MAX_IMAGE_PIXELS");
    bad = {pixels, 16, 1 << 20, SIZE_MAX / 1000, VGPT_PIXEL_RGB8, 0};
    EXPECT_FAILURE(code_and_message(vgpt_stream_observe(stream.get(), &bad)), VGPT_INVALID_ARGUMENT,
                   "overflows the address space");
    EXPECT_FALSE(stream.ready());  // none of the bad frames entered the history

    helpers::observe_case(stream, c);
    ASSERT_TRUE(stream.ready());
    std::vector<float> noise_one(size_t(l.clip_frames) * l.latent_channels * l.latent_height * l.latent_width);
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict(stream.get(), 0, &p)), VGPT_INVALID_ARGUMENT, "num_clips=0");
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict(stream.get(), INT_MAX, &p)), VGPT_INVALID_ARGUMENT,
                   "VGPT_MAX_PREDICTION_BYTES");
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict_with_noise(stream.get(), INT_MAX, noise_one.data(),
                                                                    noise_one.size(), &p)),
                   VGPT_INVALID_ARGUMENT, "VGPT_MAX_PREDICTION_BYTES");
    std::vector<float> noise(7);
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict_with_noise(stream.get(), 1, noise.data(), noise.size(), &p)),
                   VGPT_INVALID_ARGUMENT, "noise has 7 floats");
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict_with_noise(stream.get(), 1, nullptr, 0, &p)),
                   VGPT_INVALID_ARGUMENT, "noise is NULL");
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict(nullptr, 1, &p)), VGPT_INVALID_ARGUMENT, "stream is NULL");
    vgpt_prediction old{};
    old.struct_size = 0;
    EXPECT_FAILURE(code_and_message(vgpt_stream_predict(stream.get(), 1, &old)), VGPT_INVALID_ARGUMENT,
                   "prediction->struct_size is 0");

    // Reset forgets the history.
    stream.reset(1);
    EXPECT_FALSE(stream.ready());
    EXPECT_EQ(vgpt_status_code(nullptr), VGPT_OK);
    EXPECT_STREQ(vgpt_status_message(nullptr), "");
}

TEST(Errors, ModelFreedBeforeItsStream) {
    const auto& c = fixtures::index().at("tiny");
    vgpt_model* model = nullptr;
    ASSERT_EQ(vgpt_model_load(c.at("bundle").get<std::string>().c_str(), nullptr, &model), nullptr);
    vgpt_stream* raw = nullptr;
    ASSERT_EQ(vgpt_stream_create(model, 3, &raw), nullptr);
    vgpt_model_free(model);  // the stream keeps what it needs
    vgpt_stream_free(raw);
}
