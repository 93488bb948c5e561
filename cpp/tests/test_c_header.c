/* The C API from a C99 translation unit: the header compiles as C, and a whole session runs. */
#include <stdio.h>
#include <string.h>

#include "vgpt/vgpt.h"

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                 \
        }                                                             \
    } while (0)

int main(int argc, char** argv) {
    vgpt_model_options options;
    vgpt_model* model = NULL;
    vgpt_stream* stream = NULL;
    vgpt_status* st;
    CHECK(argc == 2);
    CHECK(vgpt_api_version() == VGPT_API_VERSION);
    vgpt_model_options_init(&options);
    CHECK(options.struct_size == sizeof(options) && options.verify_hashes == 1);

    st = vgpt_model_load("/nonexistent", &options, &model);
    CHECK(vgpt_status_code(st) == VGPT_NOT_FOUND && strstr(vgpt_status_message(st), "does not exist"));
    CHECK(model == NULL);
    vgpt_status_free(st);

    CHECK(vgpt_model_load(argv[1], NULL, &model) == NULL);
    {
        vgpt_layout layout;
        vgpt_prediction prediction;
        static uint8_t frame[24 * 20 * 3];
        int i;
        memset(&layout, 0, sizeof(layout));
        memset(&prediction, 0, sizeof(prediction));
        layout.struct_size = sizeof(layout);
        prediction.struct_size = sizeof(prediction);
        CHECK(vgpt_model_layout(model, &layout) == NULL);
        CHECK(vgpt_stream_create(model, 9, &stream) == NULL);
        for (i = 0; i < (int)sizeof(frame); ++i) frame[i] = (uint8_t)(i * 7);
        for (i = 0; i < layout.history_frames; ++i) {
            vgpt_image image = {frame, 24, 20, 24 * 3, VGPT_PIXEL_RGB8, 0};
            image.timestamp_ns = 1000 * i;
            CHECK(vgpt_stream_observe(stream, &image) == NULL);
        }
        CHECK(vgpt_stream_ready(stream));
        CHECK(vgpt_stream_predict(stream, 2, &prediction) == NULL);
        CHECK(prediction.num_frames == 2 * layout.clip_frames);
        CHECK(prediction.width == layout.width && prediction.height == layout.height);
        CHECK(prediction.history_timestamp_ns == 1000 * (layout.history_frames - 1));
        CHECK(prediction.latents_count == (size_t)prediction.num_frames * layout.latent_channels *
                                              layout.latent_height * layout.latent_width);
        printf("C API: predicted %d frames of %dx%d\n", prediction.num_frames, prediction.width, prediction.height);
    }
    vgpt_stream_free(stream);
    vgpt_model_free(model);
    return 0;
}
