#include "noise.hpp"

#include <cmath>

namespace vgpt {
namespace {

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

void NormalNoise::reseed(uint64_t seed) {
    for (uint64_t& s : s_) {  // splitmix64: a well-mixed state (never all zero) from any seed
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s = z ^ (z >> 31);
    }
    has_spare_ = false;
}

uint64_t NormalNoise::next() {  // xoshiro256** 1.0
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double NormalNoise::uniform() { return (double(next() >> 11) + 1.0) * 0x1.0p-53; }

void NormalNoise::fill(float* out, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        if (has_spare_) {
            out[i] = float(spare_);
            has_spare_ = false;
            continue;
        }
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        const double theta = 2.0 * M_PI * uniform();
        out[i] = float(r * std::cos(theta));
        spare_ = r * std::sin(theta);
        has_spare_ = true;
    }
}

}  // namespace vgpt
