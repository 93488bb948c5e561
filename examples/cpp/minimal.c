/* Raw frames in, raw frames out, in plain C.
 *
 *   vgpt_minimal BUNDLE IN.rgb WIDTH HEIGHT OUT.rgb [NUM_CLIPS]
 *
 * IN.rgb holds packed RGB8 frames of WIDTH x HEIGHT (e.g. ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24
 * in.rgb); every frame is observed, then NUM_CLIPS (default 1) clips are predicted and written to
 * OUT.rgb as packed RGB8 frames of the model's size (printed). */
#include <stdio.h>
#include <stdlib.h>

#include "vgpt/vgpt.h"

static int fail(vgpt_status* status) {
    fprintf(stderr, "vgpt error %d: %s\n", (int)vgpt_status_code(status), vgpt_status_message(status));
    vgpt_status_free(status);
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s BUNDLE IN.rgb WIDTH HEIGHT OUT.rgb [NUM_CLIPS]\n", argv[0]);
        return 2;
    }
    const int width = atoi(argv[3]), height = atoi(argv[4]), num_clips = argc > 6 ? atoi(argv[6]) : 1;
    vgpt_model* model = NULL;
    vgpt_stream* stream = NULL;
    vgpt_status* status = vgpt_model_load(argv[1], NULL, &model);
    if (status) return fail(status);
    vgpt_layout layout = {sizeof(vgpt_layout)};
    if ((status = vgpt_model_layout(model, &layout))) return fail(status);
    printf("model: M=%d G=%d frames %dx%d, latents %dx%dx%d, %d steps\n", layout.history_frames,
           layout.clip_frames, layout.width, layout.height, layout.latent_channels, layout.latent_height,
           layout.latent_width, layout.steps);
    if ((status = vgpt_stream_create(model, 0, &stream))) return fail(status);

    FILE* in = fopen(argv[2], "rb");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    const size_t frame_bytes = (size_t)width * height * 3;
    unsigned char* frame = malloc(frame_bytes);
    int observed = 0;
    while (frame && fread(frame, 1, frame_bytes, in) == frame_bytes) {
        vgpt_image image = {frame, width, height, (size_t)width * 3, VGPT_PIXEL_RGB8, observed};
        if ((status = vgpt_stream_observe(stream, &image))) return fail(status);
        ++observed;
    }
    fclose(in);
    free(frame);
    printf("observed %d frames, ready: %d\n", observed, vgpt_stream_ready(stream));

    vgpt_prediction prediction = {sizeof(vgpt_prediction)};
    if ((status = vgpt_stream_predict(stream, num_clips, &prediction))) return fail(status);
    FILE* out = fopen(argv[5], "wb");
    if (!out) {
        perror(argv[5]);
        return 1;
    }
    fwrite(prediction.frames, (size_t)prediction.width * prediction.height * 3, prediction.num_frames, out);
    fclose(out);
    printf("wrote %d frames of %dx%d to %s\n", prediction.num_frames, prediction.width, prediction.height, argv[5]);
    vgpt_stream_free(stream);
    vgpt_model_free(model);
    return 0;
}
