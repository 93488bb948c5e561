// Preprocessing and postprocessing against the Python runtime's (fixtures from vgpt/frames.py).
#include <gtest/gtest.h>

#include <cmath>

#include "fixtures.hpp"
#include "error.hpp"
#include "frames.hpp"

namespace {

float max_abs(const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

// The frame with each row padded by `pad` bytes, in another pixel format.
std::vector<uint8_t> repack(const std::vector<uint8_t>& rgb, int w, int h, vgpt_pixel_format format, int pad) {
    const int bpp = vgpt::bytes_per_pixel(format);
    std::vector<uint8_t> out(size_t(h) * (w * bpp + pad), 77);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const uint8_t* p = &rgb[(size_t(y) * w + x) * 3];
            uint8_t* q = &out[size_t(y) * (w * bpp + pad) + x * bpp];
            q[0] = format == VGPT_PIXEL_BGR8 ? p[2] : p[0];
            q[1] = p[1];
            q[2] = format == VGPT_PIXEL_BGR8 ? p[0] : p[2];
        }
    }
    return out;
}

}  // namespace

TEST(Frames, FitFrameMatchesPython) {
    vgpt::FrameScratch scratch;
    for (const auto& c : fixtures::index().at("preprocess")) {
        const fixtures::Array in = fixtures::load(c.at("input"));
        const std::vector<float> expected = fixtures::load(c.at("output")).as<float>();
        const int h = int(in.shape[0]), w = int(in.shape[1]), H = c.at("height"), W = c.at("width");
        const std::vector<uint8_t> rgb = in.as<uint8_t>();
        std::vector<float> out(size_t(3) * H * W);
        vgpt_image image{rgb.data(), w, h, size_t(w) * 3, VGPT_PIXEL_RGB8, 0};
        vgpt::fit_frame(image, H, W, out.data(), scratch);
        const float diff = max_abs(out, expected);
        std::printf("fit_frame %dx%d -> %dx%d: max abs difference to PyTorch %.3g\n", h, w, H, W, diff);
        // The taps and the fused multiply-add sums are PyTorch's own: bit for bit on an AVX2 machine
        // except a float ulp (1.2e-7 at 1.0) in some samples of strong downsampling. 1e-6 (8 ulps) also
        // covers a PyTorch dispatching to a kernel without FMA (each product rounded: ~1 ulp per tap).
        EXPECT_LE(diff, 1e-6f) << h << "x" << w << " -> " << H << "x" << W;

        // The same pixels as BGR8 and RGBA8 with padded rows give exactly the same frame: only the
        // reading of the bytes differs.
        for (vgpt_pixel_format format : {VGPT_PIXEL_BGR8, VGPT_PIXEL_RGBA8}) {
            const int pad = 5, bpp = vgpt::bytes_per_pixel(format);
            const std::vector<uint8_t> packed = repack(rgb, w, h, format, pad);
            std::vector<float> other(out.size());
            vgpt_image view{packed.data(), w, h, size_t(w) * bpp + pad, format, 0};
            vgpt::fit_frame(view, H, W, other.data(), scratch);
            EXPECT_EQ(other, out) << "format " << format;
        }
    }
}

TEST(Frames, ToUint8MatchesPython) {
    const auto& c = fixtures::index().at("to_uint8");
    const std::vector<float> values = fixtures::load(c.at("input")).as<float>();
    const std::vector<uint8_t> expected = fixtures::load(c.at("output")).as<uint8_t>();
    // Lay the values out as one frame [3, 1, N] with the same value in every channel.
    const int n = int(values.size());
    std::vector<float> chw;
    for (int ch = 0; ch < 3; ++ch) chw.insert(chw.end(), values.begin(), values.end());
    std::vector<uint8_t> hwc(size_t(3) * n);
    vgpt::to_uint8(chw.data(), 1, 1, n, hwc.data());
    for (int i = 0; i < n; ++i) {
        // Exact: the same two float operations and round-half-to-even as torch.
        ASSERT_EQ(hwc[3 * i], expected[i]) << "value " << values[i];
        ASSERT_EQ(hwc[3 * i + 2], expected[i]);
    }
}

TEST(Frames, CheckImageNamesTheProblem) {
    uint8_t pixel[4] = {0, 0, 0, 0};
    auto message = [](const vgpt_image& image) {
        try {
            vgpt::check_image(&image);
        } catch (const vgpt::Error& e) {
            EXPECT_EQ(e.code(), VGPT_INVALID_ARGUMENT);
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(message({pixel, 1, 1, 3, VGPT_PIXEL_RGB8, 0}), "accepted");
    EXPECT_NE(message({pixel, 0, 1, 3, VGPT_PIXEL_RGB8, 0}).find("width and height must be >= 1"), std::string::npos);
    EXPECT_NE(message({pixel, 1, 1, 3, VGPT_PIXEL_RGBA8, 0}).find("stride 3 bytes is less than a row"),
              std::string::npos);
    vgpt_image unknown{pixel, 1, 1, 3, VGPT_PIXEL_RGB8, 0};
    const int nine = 9;  // what a C caller may store in the enum field
    std::memcpy(&unknown.format, &nine, sizeof(nine));
    EXPECT_NE(message(unknown).find("image format 9"), std::string::npos);
    EXPECT_NE(message({nullptr, 1, 1, 3, VGPT_PIXEL_RGB8, 0}).find("image data is NULL"), std::string::npos);
}
