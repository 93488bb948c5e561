// The default noise of a stream: standard normal floats from a seeded generator of our own
// (xoshiro256** seeded through splitmix64, Box-Muller in double). It is not torch's generator: the same
// seed gives other noise than the Python runtime, so parity tests pass the noise explicitly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgpt {

class NormalNoise {
public:
    explicit NormalNoise(uint64_t seed = 0) { reseed(seed); }
    void reseed(uint64_t seed);
    void fill(float* out, size_t count);

private:
    uint64_t next();
    double uniform();  // in (0, 1]
    uint64_t s_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace vgpt
