// Frame preprocessing and postprocessing, bit-for-bit the Python runtime's (vgpt/frames.py):
// `fit_frame` is fit_frames for one frame (cover-resize with PyTorch's antialiased bilinear filter,
// centre crop, [-1, 1]); `to_uint8` is to_uint8 (clamp, scale, round half to even).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vgpt/vgpt.h"

namespace vgpt {

// Working memory of fit_frame, kept by a stream so that a steady camera allocates nothing per frame.
struct FrameScratch {
    std::vector<float> planar;      // the frame in [-1, 1], [3, h, w]
    std::vector<float> horizontal;  // after the horizontal pass, [3, h, W]
    std::vector<int64_t> starts, sizes;
    std::vector<float> weights;
};

// An enum field as the int a C caller stored: C lets any int into it, while reading a value outside
// the enumerators through the C++ enum type is undefined behaviour.
template <typename Enum>
int enum_value(const Enum& field) {
    static_assert(sizeof(Enum) == sizeof(int), "C enums are ints on this ABI");
    int v;
    std::memcpy(&v, &field, sizeof(v));
    return v;
}

// Bytes per pixel of a format (as enum_value), 0 for an unknown one.
int bytes_per_pixel(int format);

// Checks an image view; throws vgpt::Error (VGPT_INVALID_ARGUMENT) naming the field that is wrong.
void check_image(const vgpt_image* image);

// One frame (checked by check_image) -> float32 [3, height, width] in [-1, 1] at `out`.
void fit_frame(const vgpt_image& image, int height, int width, float* out, FrameScratch& scratch);

// float [frames, 3, H, W] (any range) -> uint8 [frames, H, W, 3].
void to_uint8(const float* chw, int frames, int height, int width, uint8_t* hwc);

}  // namespace vgpt
