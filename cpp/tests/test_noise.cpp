#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "manifest.hpp"
#include "noise.hpp"

TEST(Noise, SeededAndStandardNormal) {
    const size_t n = 1000000;
    std::vector<float> a(n), b(n), c(n);
    vgpt::NormalNoise g(7);
    g.fill(a.data(), n);
    g.reseed(7);
    g.fill(b.data(), 3);  // an odd count leaves a spare draw behind; it must continue the same sequence
    g.fill(b.data() + 3, n - 3);
    EXPECT_EQ(a, b);
    vgpt::NormalNoise(8).fill(c.data(), n);
    EXPECT_NE(a, c);
    double sum = 0, sq = 0;
    for (float x : a) sum += x, sq += double(x) * x;
    const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
    // Standard errors for 1e6 draws: 1e-3 for the mean, 7e-4 for the standard deviation: 5 sigma.
    EXPECT_NEAR(mean, 0.0, 5e-3);
    EXPECT_NEAR(sd, 1.0, 5e-3);
}

TEST(Manifest, VersionComparisonIsMajorMinor) {
    EXPECT_TRUE(vgpt::version_newer("1.32.0", "1.21.1"));
    EXPECT_FALSE(vgpt::version_newer("1.21.9", "1.21.0"));  // patch releases do not matter
    EXPECT_FALSE(vgpt::version_newer("1.20.0+cpu", "1.21.0"));
    EXPECT_TRUE(vgpt::version_newer("2.0", "1.99"));
}
