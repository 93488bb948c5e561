// The fixtures tests/cpp_runtime/make_fixtures.py writes: fixtures.json plus raw little-endian arrays.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace fixtures {

inline std::string folder() {
    const char* f = std::getenv("VGPT_FIXTURES");
    if (!f) throw std::runtime_error("VGPT_FIXTURES is not set: run the tests through ctest (docs/cpp.md)");
    return f;
}

inline const nlohmann::json& index() {
    static const nlohmann::json j = [] {
        std::ifstream in(folder() + "/fixtures.json");
        if (!in) throw std::runtime_error("no " + folder() + "/fixtures.json: run the vgpt_fixtures test first");
        return nlohmann::json::parse(in);
    }();
    return j;
}

struct Array {
    std::vector<int64_t> shape;
    std::vector<char> bytes;
    template <typename T>
    std::vector<T> as() const {
        std::vector<T> v(bytes.size() / sizeof(T));
        std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
        return v;
    }
};

inline Array load(const nlohmann::json& ref) {
    Array a;
    a.shape = ref.at("shape").get<std::vector<int64_t>>();
    std::ifstream in(folder() + "/" + ref.at("file").get<std::string>(), std::ios::binary);
    a.bytes.assign(std::istreambuf_iterator<char>(in), {});
    return a;
}

}  // namespace fixtures
