// The C API: handles over Model and Stream; every exception stops here and becomes a vgpt_status.
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "error.hpp"
#include "model.hpp"
#include "stream.hpp"
#include "vgpt/vgpt.h"

struct vgpt_status {
    vgpt_code code;
    std::string message;
};

struct vgpt_model {
    std::shared_ptr<const vgpt::Model> model;
};

struct vgpt_stream {
    std::unique_ptr<vgpt::Stream> stream;
    std::shared_ptr<const vgpt::Model> model;  // keeps the model alive after vgpt_model_free
};

namespace {

// Returned when even a status cannot be allocated; vgpt_status_free leaves it alone.
vgpt_status* out_of_memory() noexcept {
    static vgpt_status status{VGPT_INTERNAL, "out of memory"};
    return &status;
}

vgpt_status* make_status(vgpt_code code, const char* message) noexcept {
    try {
        return new vgpt_status{code, message};
    } catch (...) {
        return out_of_memory();
    }
}

template <typename F>
vgpt_status* guarded(F&& body) noexcept {
    try {
        body();
        return nullptr;
    } catch (const vgpt::Error& e) {
        return make_status(e.code(), e.what());
    } catch (const std::bad_alloc&) {
        return out_of_memory();
    } catch (const std::exception& e) {
        return make_status(VGPT_INTERNAL, e.what());
    } catch (...) {
        return make_status(VGPT_INTERNAL, "unknown exception");
    }
}

void require(const void* p, const char* what) {
    if (!p) throw vgpt::Error(VGPT_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

// Size-prefixed output structs: write a field only if the caller's struct has room for it.
template <typename S, typename T>
void put(S* s, size_t offset, const T& value) {
    if (offset + sizeof(T) <= s->struct_size) std::memcpy(reinterpret_cast<char*>(s) + offset, &value, sizeof(T));
}
#define VGPT_PUT(s, field, value) put(s, offsetof(std::remove_pointer_t<decltype(s)>, field), value)

void check_struct_size(size_t size, const char* what) {
    if (size < sizeof(size_t) + sizeof(int)) {
        throw vgpt::Error(VGPT_INVALID_ARGUMENT, std::string(what) + "->struct_size is " + std::to_string(size) +
                                                     ": set it to sizeof the struct before the call");
    }
}

}  // namespace

extern "C" {

VGPT_API int vgpt_api_version(void) { return VGPT_API_VERSION; }

VGPT_API vgpt_code vgpt_status_code(const vgpt_status* status) { return status ? status->code : VGPT_OK; }

VGPT_API const char* vgpt_status_message(const vgpt_status* status) {
    return status ? status->message.c_str() : "";
}

VGPT_API void vgpt_status_free(vgpt_status* status) {
    if (status != out_of_memory()) delete status;
}

VGPT_API void vgpt_model_options_init(vgpt_model_options* options) {
    if (!options) return;
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(*options);
    options->backend = VGPT_BACKEND_ONNXRUNTIME;
    options->intra_op_threads = 0;
    options->allow_spinning = 0;
    options->ort_library = nullptr;
    options->layout = nullptr;
    options->verify_hashes = 1;
    options->trusted_keys = nullptr;
    options->num_trusted_keys = 0;
}

VGPT_API vgpt_status* vgpt_model_load(const char* path, const vgpt_model_options* options, vgpt_model** model) {
    if (model) *model = nullptr;
    return guarded([&] {
        require(model, "model (the output pointer)");
        require(path, "path");
        auto loaded = vgpt::Model::load(path, vgpt::read_options(options));
        *model = new vgpt_model{std::move(loaded)};
    });
}

VGPT_API void vgpt_model_free(vgpt_model* model) { delete model; }

VGPT_API vgpt_status* vgpt_model_layout(const vgpt_model* model, vgpt_layout* layout) {
    return guarded([&] {
        require(model, "model");
        require(layout, "layout");
        check_struct_size(layout->struct_size, "layout");
        const vgpt::Dims& d = model->model->dims();
        VGPT_PUT(layout, history_frames, d.M);
        VGPT_PUT(layout, clip_frames, d.G);
        VGPT_PUT(layout, height, d.H);
        VGPT_PUT(layout, width, d.W);
        VGPT_PUT(layout, channels, 3);
        VGPT_PUT(layout, latent_channels, d.C);
        VGPT_PUT(layout, latent_height, d.h);
        VGPT_PUT(layout, latent_width, d.w);
        VGPT_PUT(layout, steps, d.S);
    });
}

VGPT_API vgpt_status* vgpt_stream_create(vgpt_model* model, uint64_t seed, vgpt_stream** stream) {
    if (stream) *stream = nullptr;
    return guarded([&] {
        require(stream, "stream (the output pointer)");
        require(model, "model");
        auto s = std::make_unique<vgpt::Stream>(model->model, seed);
        *stream = new vgpt_stream{std::move(s), model->model};
    });
}

VGPT_API void vgpt_stream_free(vgpt_stream* stream) { delete stream; }

VGPT_API vgpt_status* vgpt_stream_reset(vgpt_stream* stream, uint64_t seed) {
    return guarded([&] {
        require(stream, "stream");
        stream->stream->reset(seed);
    });
}

VGPT_API vgpt_status* vgpt_stream_set_kv_mode(vgpt_stream* stream, vgpt_kv_mode mode) {
    return guarded([&] {
        require(stream, "stream");
        const int m = vgpt::enum_value(mode);
        if (m != VGPT_KV_EXACT && m != VGPT_KV_ROLLING) {
            throw vgpt::Error(VGPT_INVALID_ARGUMENT,
                              "mode " + std::to_string(m) + ": use VGPT_KV_EXACT or VGPT_KV_ROLLING");
        }
        stream->stream->set_rolling(m == VGPT_KV_ROLLING);
    });
}

VGPT_API vgpt_status* vgpt_stream_observe(vgpt_stream* stream, const vgpt_image* image) {
    return guarded([&] {
        require(stream, "stream");
        vgpt::check_image(image);
        stream->stream->observe(*image);
    });
}

VGPT_API int vgpt_stream_ready(vgpt_stream* stream) {
    if (!stream) return 0;
    try {
        return stream->stream->ready() ? 1 : 0;
    } catch (...) {  // std::mutex::lock may throw std::system_error
        return 0;
    }
}

static vgpt_status* predict(vgpt_stream* stream, int num_clips, const float* noise, size_t noise_count,
                            vgpt_prediction* prediction) {
    return guarded([&] {
        require(stream, "stream");
        require(prediction, "prediction");
        check_struct_size(prediction->struct_size, "prediction");
        vgpt::PredictResult r = stream->stream->predict(num_clips, noise, noise_count);
        const vgpt::Dims& d = stream->model->dims();
        VGPT_PUT(prediction, frames, r.frames);
        VGPT_PUT(prediction, num_frames, r.num_frames);
        VGPT_PUT(prediction, width, d.W);
        VGPT_PUT(prediction, height, d.H);
        VGPT_PUT(prediction, latents, r.latents);
        VGPT_PUT(prediction, latents_count, r.latents_count);
        VGPT_PUT(prediction, history_timestamp_ns, r.history_timestamp_ns);
    });
}

VGPT_API vgpt_status* vgpt_stream_predict(vgpt_stream* stream, int num_clips, vgpt_prediction* prediction) {
    return predict(stream, num_clips, nullptr, 0, prediction);
}

VGPT_API vgpt_status* vgpt_stream_predict_with_noise(vgpt_stream* stream, int num_clips, const float* noise,
                                                     size_t noise_count, vgpt_prediction* prediction) {
    if (!noise) return make_status(VGPT_INVALID_ARGUMENT, "noise is NULL: use vgpt_stream_predict for the stream's own");
    return predict(stream, num_clips, noise, noise_count, prediction);
}

}  // extern "C"
