// Header-only C++ RAII wrapper over the C API of vgpt.h; failures throw vgpt::Exception.
//
//     vgpt::Model model("bundle/");
//     vgpt::Stream stream(model, /*seed=*/42);
//     stream.observe(image);
//     if (stream.ready()) { vgpt_prediction p = stream.predict(1); ... p.frames ... }
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vgpt/vgpt.h"

namespace vgpt {

class Exception : public std::runtime_error {
public:
    Exception(vgpt_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
    vgpt_code code() const noexcept { return code_; }

private:
    vgpt_code code_;
};

// Takes ownership of a status; throws when it is a failure.
inline void check(vgpt_status* status) {
    if (!status) return;
    std::unique_ptr<vgpt_status, decltype(&vgpt_status_free)> owned(status, &vgpt_status_free);
    throw Exception(vgpt_status_code(status), vgpt_status_message(status));
}

inline vgpt_model_options default_options() {
    vgpt_model_options o;
    vgpt_model_options_init(&o);
    return o;
}

class Model {
public:
    explicit Model(const std::string& path, const vgpt_model_options& options = default_options()) {
        vgpt_model* raw = nullptr;
        check(vgpt_model_load(path.c_str(), &options, &raw));
        model_.reset(raw);
    }
    vgpt_layout layout() const {
        vgpt_layout l{};
        l.struct_size = sizeof(l);
        check(vgpt_model_layout(model_.get(), &l));
        return l;
    }
    vgpt_model* get() const { return model_.get(); }

private:
    std::unique_ptr<vgpt_model, decltype(&vgpt_model_free)> model_{nullptr, &vgpt_model_free};
};

class Stream {
public:
    explicit Stream(const Model& model, uint64_t seed = 0) {
        vgpt_stream* raw = nullptr;
        check(vgpt_stream_create(model.get(), seed, &raw));
        stream_.reset(raw);
    }
    void reset(uint64_t seed) { check(vgpt_stream_reset(stream_.get(), seed)); }
    void observe(const vgpt_image& image) { check(vgpt_stream_observe(stream_.get(), &image)); }
    void observe(const uint8_t* data, int width, int height, size_t stride,
                 vgpt_pixel_format format = VGPT_PIXEL_RGB8, int64_t timestamp_ns = 0) {
        vgpt_image image{data, width, height, stride, format, timestamp_ns};
        observe(image);
    }
    bool ready() const { return vgpt_stream_ready(stream_.get()) != 0; }
    void set_kv_mode(vgpt_kv_mode mode) { check(vgpt_stream_set_kv_mode(stream_.get(), mode)); }
    // The views in the result stay valid until the next call on this stream.
    vgpt_prediction predict(int num_clips = 1) {
        vgpt_prediction p{};
        p.struct_size = sizeof(p);
        check(vgpt_stream_predict(stream_.get(), num_clips, &p));
        return p;
    }
    vgpt_prediction predict(int num_clips, const std::vector<float>& noise) {
        vgpt_prediction p{};
        p.struct_size = sizeof(p);
        check(vgpt_stream_predict_with_noise(stream_.get(), num_clips, noise.data(), noise.size(), &p));
        return p;
    }
    vgpt_stream* get() const { return stream_.get(); }

private:
    std::unique_ptr<vgpt_stream, decltype(&vgpt_stream_free)> stream_{nullptr, &vgpt_stream_free};
};

}  // namespace vgpt
