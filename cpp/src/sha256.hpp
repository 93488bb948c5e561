// SHA-256 (FIPS 180-4), for checking graph files against the manifest without a crypto dependency.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vgpt {

class Sha256 {
public:
    Sha256();
    void update(const void* data, size_t size);
    std::array<uint8_t, 32> digest();  // finishes the hash; call once
    static std::string hex(const std::array<uint8_t, 32>& digest);

private:
    void block(const uint8_t* p);
    std::array<uint32_t, 8> h_;
    std::array<uint8_t, 64> buffer_{};
    size_t buffered_ = 0;
    uint64_t length_ = 0;  // bytes hashed so far
};

// Hex digest of a whole file; throws vgpt::Error (VGPT_BAD_BUNDLE) when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace vgpt
