// Shared by the API tests: running a fixture's frames through a stream, copying bundles to edit them.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "fixtures.hpp"
#include "vgpt/vgpt.hpp"

namespace helpers {

// Observes every frame of a prediction case ([F, h, w, 3] RGB8) into the stream.
inline void observe_case(vgpt::Stream& stream, const nlohmann::json& c) {
    const fixtures::Array frames = fixtures::load(c.at("observe"));
    const int h = int(frames.shape[1]), w = int(frames.shape[2]);
    const auto* data = reinterpret_cast<const uint8_t*>(frames.bytes.data());
    for (int64_t f = 0; f < frames.shape[0]; ++f) stream.observe(data + f * h * w * 3, w, h, size_t(w) * 3, VGPT_PIXEL_RGB8, f);
}

// A fresh folder under the build tree's temp space, removed by the destructor.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "vgpt-test-XXXXXX").string();
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

// A copy of the tiny bundle that a test may alter.
inline std::filesystem::path copy_tiny(const TempDir& dir) {
    const std::filesystem::path to = dir.path / "bundle";
    std::filesystem::copy(fixtures::index().at("tiny").at("bundle").get<std::string>(), to,
                          std::filesystem::copy_options::recursive);
    return to;
}

}  // namespace helpers
