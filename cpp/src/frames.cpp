#include "frames.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "error.hpp"

namespace vgpt {
namespace {

// PyTorch's HelperInterpLinear::aa_filter: the triangle filter of bilinear interpolation.
float triangle(float x) {
    x = std::abs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

// The taps of one antialiased bilinear pass from `in` to `out` samples, for the output indices
// [first, first + count): PyTorch's HelperInterpBase::_compute_indices_min_size_weights_aa with
// interp_size 2, align_corners false and no explicit scale, for float input. The mixed float/double
// arithmetic is PyTorch's (scalar_t = float, literals double) and is kept so the taps agree bit for bit.
void linear_aa_taps(int64_t in, int64_t out, int64_t first, int64_t count, FrameScratch& s, int& max_size) {
    const float scale = static_cast<float>(in) / out;  // area_pixel_compute_scale
    const float support = (scale >= 1.0) ? (2 * 0.5) * scale : 2 * 0.5;
    max_size = static_cast<int>(std::ceil(support)) * 2 + 1;
    s.starts.assign(count, 0);
    s.sizes.assign(count, 0);
    s.weights.assign(count * max_size, 0.0f);
    for (int64_t k = 0; k < count; ++k) {
        const int64_t i = first + k;
        const float center = scale * (i + 0.5);
        const float invscale = (scale >= 1.0) ? 1.0 / scale : 1.0;
        const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), static_cast<int64_t>(0));
        const int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), in) - xmin;
        float* w = s.weights.data() + k * max_size;
        float total = 0.0;
        for (int64_t j = 0; j < xsize; ++j) {
            w[j] = triangle((j + xmin - center + 0.5) * invscale);
            total += w[j];
        }
        if (total != 0.0) {
            for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
        }
        s.starts[k] = xmin;
        s.sizes[k] = xsize;
    }
}

// PyTorch's interpolate_aa_single_dim: a float sum in tap order, the first product assigned. PyTorch's
// CPU kernels are built for AVX2/AVX-512 with GCC's default floating-point contraction, so each
// `output += t * w` is a fused multiply-add; std::fma reproduces it on any machine (measured against
// torch 2.13: bit-identical frames for up- and downsampling by up to 2x; one float ulp apart in a
// few samples of a 3x downsample, where PyTorch's vectorized loop sums in another order).
inline float taps_sum(const float* src, ptrdiff_t step, const float* w, int64_t size) {
    float acc = src[0] * w[0];
    for (int64_t j = 1; j < size; ++j) acc = std::fma(src[j * step], w[j], acc);
    return acc;
}

}  // namespace

int bytes_per_pixel(int format) {
    switch (format) {
        case VGPT_PIXEL_RGB8:
        case VGPT_PIXEL_BGR8:
            return 3;
        case VGPT_PIXEL_RGBA8:
            return 4;
    }
    return 0;
}

void check_image(const vgpt_image* image) {
    if (!image) throw Error(VGPT_INVALID_ARGUMENT, "image is NULL");
    const int bpp = bytes_per_pixel(enum_value(image->format));
    if (!bpp) {
        throw Error(VGPT_INVALID_ARGUMENT, "image format " + std::to_string(enum_value(image->format)) +
                                               ": use VGPT_PIXEL_RGB8, VGPT_PIXEL_BGR8 or VGPT_PIXEL_RGBA8");
    }
    if (image->width < 1 || image->height < 1) {
        throw Error(VGPT_INVALID_ARGUMENT, "image of " + std::to_string(image->width) + "x" +
                                               std::to_string(image->height) + " px: width and height must be >= 1");
    }
    if (int64_t(image->width) * image->height > VGPT_MAX_IMAGE_PIXELS) {
        throw Error(VGPT_INVALID_ARGUMENT, "image of " + std::to_string(image->width) + "x" +
                                               std::to_string(image->height) + " px is more than the " +
                                               std::to_string(VGPT_MAX_IMAGE_PIXELS) +
                                               " pixels (VGPT_MAX_IMAGE_PIXELS) a frame may have; resize it first");
    }
    if (image->stride < size_t(image->width) * bpp) {
        throw Error(VGPT_INVALID_ARGUMENT, "image stride " + std::to_string(image->stride) + " bytes is less than a row (" +
                                               std::to_string(image->width) + " px x " + std::to_string(bpp) +
                                               " bytes)");
    }
    if (image->stride > SIZE_MAX / size_t(image->height)) {
        throw Error(VGPT_INVALID_ARGUMENT, "image stride " + std::to_string(image->stride) + " bytes x " +
                                               std::to_string(image->height) + " rows overflows the address space");
    }
    if (!image->data) throw Error(VGPT_INVALID_ARGUMENT, "image data is NULL");
}

void fit_frame(const vgpt_image& image, int height, int width, float* out, FrameScratch& s) {
    const int64_t h = image.height, w = image.width;
    const int format = enum_value(image.format), bpp = bytes_per_pixel(format);
    const int order[3] = {format == VGPT_PIXEL_BGR8 ? 2 : 0, 1, format == VGPT_PIXEL_BGR8 ? 0 : 2};

    // uint8 -> float32 in [-1, 1], planar: torch's `x.to(float32) / 127.5 - 1.0` (a float division).
    s.planar.resize(size_t(3 * h * w));
    for (int c = 0; c < 3; ++c) {
        float* dst = s.planar.data() + c * h * w;
        for (int64_t y = 0; y < h; ++y) {
            const uint8_t* row = image.data + y * image.stride + order[c];
            for (int64_t x = 0; x < w; ++x) dst[y * w + x] = static_cast<float>(row[x * bpp]) / 127.5f - 1.0f;
        }
    }

    // Cover: the smallest size keeping the aspect ratio that holds height x width; Python's round()
    // (half to even) is nearbyint in the default rounding mode.
    const double scale = std::max(double(height) / h, double(width) / w);
    const int64_t rh = std::max<int64_t>(height, std::llrint(h * scale));
    const int64_t rw = std::max<int64_t>(width, std::llrint(w * scale));
    const int64_t top = (rh - height) / 2, left = (rw - width) / 2;

    // PyTorch resizes the last (contiguous) dimension first, then the rows. Only the output columns and
    // rows that survive the crop are computed: each output sample depends on its own taps only.
    s.horizontal.resize(size_t(3 * h * width));
    int max_size = 0;
    if (rw != w) linear_aa_taps(w, rw, left, width, s, max_size);
    for (int64_t c = 0; c < 3; ++c) {
        for (int64_t y = 0; y < h; ++y) {
            const float* src = s.planar.data() + (c * h + y) * w;
            float* dst = s.horizontal.data() + (c * h + y) * width;
            for (int64_t x = 0; x < width; ++x) {
                dst[x] = rw == w ? src[left + x]
                                 : taps_sum(src + s.starts[x], 1, s.weights.data() + x * max_size, s.sizes[x]);
            }
        }
    }
    if (rh != h) linear_aa_taps(h, rh, top, height, s, max_size);
    for (int64_t c = 0; c < 3; ++c) {
        const float* plane = s.horizontal.data() + c * h * width;
        for (int64_t y = 0; y < height; ++y) {
            float* dst = out + (c * height + y) * width;
            for (int64_t x = 0; x < width; ++x) {
                const float v = rh == h ? plane[(top + y) * width + x]
                                        : taps_sum(plane + s.starts[y] * width + x, width,
                                                   s.weights.data() + y * max_size, s.sizes[y]);
                dst[x] = std::min(std::max(v, -1.0f), 1.0f);
            }
        }
    }
}

void to_uint8(const float* chw, int frames, int height, int width, uint8_t* hwc) {
    const size_t plane = size_t(height) * width;
    for (int f = 0; f < frames; ++f) {
        const float* src = chw + size_t(f) * 3 * plane;
        uint8_t* dst = hwc + size_t(f) * 3 * plane;
        for (size_t p = 0; p < plane; ++p) {
            for (int c = 0; c < 3; ++c) {
                // torch: ((x.clamp(-1, 1) + 1.0) * 127.5).round(): two float ops, round half to even.
                const float x = std::min(std::max(src[c * plane + p], -1.0f), 1.0f);
                dst[3 * p + c] = static_cast<uint8_t>(std::nearbyint((x + 1.0f) * 127.5f));
            }
        }
    }
}

}  // namespace vgpt
