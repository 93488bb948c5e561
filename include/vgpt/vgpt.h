/* vgpt: the Video-GPT runtime for C and C++ (C99 API over ONNX Runtime).
 *
 * A vgpt_model is one loaded export bundle: immutable after vgpt_model_load, shareable by any number
 * of threads. A vgpt_stream is one camera's state (history window, KV cache, buffers, bindings); calls
 * on one stream are serialized by the stream itself, and streams of one model run concurrently.
 *
 *     vgpt_model* model; vgpt_stream* stream; vgpt_status* st;
 *     st = vgpt_model_load("bundle/", NULL, &model);           // NULL options: the defaults
 *     st = vgpt_stream_create(model, 42, &stream);
 *     for each camera frame: st = vgpt_stream_observe(stream, &image);
 *     if (vgpt_stream_ready(stream)) st = vgpt_stream_predict(stream, 1, &prediction);
 *
 * Every call that can fail returns a vgpt_status*: NULL on success, otherwise a code and a message
 * that the caller frees with vgpt_status_free. Nothing throws across this boundary, and there is no
 * global initialization or shutdown: ONNX Runtime is loaded (dlopen) by the first vgpt_model_load.
 */
#ifndef VGPT_VGPT_H
#define VGPT_VGPT_H

#include <stddef.h>
#include <stdint.h>

#if defined(VGPT_BUILDING_LIBRARY)
#define VGPT_API __attribute__((visibility("default")))
#else
#define VGPT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header's API; vgpt_api_version() returns the library's. */
#define VGPT_API_VERSION 1

typedef struct vgpt_model vgpt_model;
typedef struct vgpt_stream vgpt_stream;
typedef struct vgpt_status vgpt_status;

typedef enum vgpt_code {
    VGPT_OK = 0,
    VGPT_INVALID_ARGUMENT = 1, /* a NULL pointer, a bad image size, stride or format, num_clips < 1 */
    VGPT_NOT_FOUND = 2,        /* no bundle (manifest.json) at the path given */
    VGPT_BAD_BUNDLE = 3,       /* a manifest, graph file, hash or shape that is wrong: re-export */
    VGPT_RUNTIME_LIBRARY = 4,  /* ONNX Runtime missing, too old, or failing to load/run a graph */
    VGPT_NOT_READY = 5,        /* predict before the history holds M frames */
    VGPT_UNSUPPORTED = 6,      /* a backend this build does not have */
    VGPT_INTERNAL = 7          /* out of memory, or a bug: please report the message */
} vgpt_code;

VGPT_API int vgpt_api_version(void);

/* A status is owned by the caller. Both accessors accept NULL (success): VGPT_OK and "". */
VGPT_API vgpt_code vgpt_status_code(const vgpt_status* status);
VGPT_API const char* vgpt_status_message(const vgpt_status* status);
VGPT_API void vgpt_status_free(vgpt_status* status);

typedef enum vgpt_backend {
    VGPT_BACKEND_ONNXRUNTIME = 0, /* the CPU execution provider of ONNX Runtime */
    VGPT_BACKEND_TENSORRT = 1     /* only in builds with VGPT_WITH_TENSORRT (else VGPT_UNSUPPORTED); the path
                                     given to vgpt_model_load is then a vgpt-build engines folder */
} vgpt_backend;

/* Size-prefixed and append-only: new fields go at the end, and the library reads only the first
 * struct_size bytes, so a caller built against an older header keeps working. Always start from
 * vgpt_model_options_init. */
typedef struct vgpt_model_options {
    size_t struct_size;      /* sizeof(vgpt_model_options), set by vgpt_model_options_init */
    vgpt_backend backend;    /* default VGPT_BACKEND_ONNXRUNTIME */
    int intra_op_threads;    /* threads per graph run; 0 (default): ONNX Runtime's choice */
    int allow_spinning;      /* 0 (default): idle intra-op threads sleep instead of spinning */
    const char* ort_library; /* path of libonnxruntime.so; NULL (default): the search in docs/cpp.md */
    const char* layout;      /* the bundle layout's name; NULL (default): its first layout */
    int verify_hashes;       /* 1 (default): check every graph file's sha256 against the manifest */
    /* Ed25519 public keys (paths of PEM files, vgpt-export --new-signing-key's .pub): when
     * num_trusted_keys > 0, only a bundle whose signature.json signs its manifest.json with one of them
     * loads (vgpt-export --sign; docs/manifest.md "Signed bundles"); unsigned or foreign bundles are
     * VGPT_BAD_BUNDLE. Default NULL, 0: no signature needed. The ONNX Runtime backend only. */
    const char* const* trusted_keys;
    size_t num_trusted_keys;
} vgpt_model_options;

VGPT_API void vgpt_model_options_init(vgpt_model_options* options);

/* path: the bundle folder (holding manifest.json), a layout folder inside it, or a file of either; with
 * VGPT_BACKEND_TENSORRT, an engines folder (holding engines.json) or its model.plan.
 * options may be NULL (the defaults). On failure *model is set to NULL. */
VGPT_API vgpt_status* vgpt_model_load(const char* path, const vgpt_model_options* options, vgpt_model** model);
/* Streams keep what they need of the model alive: a model may be freed before its streams. */
VGPT_API void vgpt_model_free(vgpt_model* model);

/* The static layout every stream of a model works in. Size-prefixed like the options: set
 * struct_size = sizeof(vgpt_layout) before the call. */
typedef struct vgpt_layout {
    size_t struct_size;
    int history_frames;  /* M: frames observed before a prediction can start */
    int clip_frames;     /* G: frames per predicted clip */
    int height, width;   /* H, W: the model's frame size in pixels */
    int channels;        /* 3: output frames are RGB8 */
    int latent_channels; /* C */
    int latent_height;   /* h */
    int latent_width;    /* w */
    int steps;           /* S: denoising steps per clip (baked into the bundle) */
} vgpt_layout;

VGPT_API vgpt_status* vgpt_model_layout(const vgpt_model* model, vgpt_layout* layout);

/* seed: the stream's noise generator (a xoshiro256** + Box-Muller stream of its own: NOT torch's
 * generator, so the same seed gives other clips than the Python runtime; for parity pass the noise
 * explicitly to vgpt_stream_predict_with_noise). */
VGPT_API vgpt_status* vgpt_stream_create(vgpt_model* model, uint64_t seed, vgpt_stream** stream);
VGPT_API void vgpt_stream_free(vgpt_stream* stream);
/* Forget the observed history and reseed the noise. */
VGPT_API vgpt_status* vgpt_stream_reset(vgpt_stream* stream, uint64_t seed);

typedef enum vgpt_pixel_format {
    VGPT_PIXEL_RGB8 = 0,
    VGPT_PIXEL_BGR8 = 1, /* OpenCV's order */
    VGPT_PIXEL_RGBA8 = 2 /* alpha ignored */
} vgpt_pixel_format;

/* The largest frame vgpt_stream_observe takes (width * height; an 8K frame has 33 million pixels) and
 * the most bytes one prediction may return (frames and latents): larger requests are
 * VGPT_INVALID_ARGUMENT before anything is allocated. */
#define VGPT_MAX_IMAGE_PIXELS ((int64_t)1 << 27)
#define VGPT_MAX_PREDICTION_BYTES ((uint64_t)1 << 32)

/* A view of one frame, any size: it is resized to cover the model's H x W (bilinear, antialiased,
 * keeping the aspect ratio) and centre-cropped, exactly as the Python runtime's fit_frames. */
typedef struct vgpt_image {
    const uint8_t* data;
    int width, height;       /* pixels, >= 1, width * height <= VGPT_MAX_IMAGE_PIXELS */
    size_t stride;           /* bytes from one row to the next, >= width * bytes per pixel */
    vgpt_pixel_format format;
    int64_t timestamp_ns;    /* the caller's clock; reported back with the prediction */
} vgpt_image;

/* How a stream keeps the KV cache of its history. */
typedef enum vgpt_kv_mode {
    VGPT_KV_EXACT = 0,  /* default: every prediction runs the newest M frames through prefill */
    VGPT_KV_ROLLING = 1 /* GPDiT bundles (frame.onnx, ring.onnx) only, else VGPT_UNSUPPORTED: each observed frame
                           runs alone into a ring of the newest M frames' keys/values and a prediction reads the
                           ring instead of running prefill; as exact (fp32 round-off), one frame of work per frame */
} vgpt_kv_mode;

/* Switches the stream's mode; the frames it has observed enter the ring at once. */
VGPT_API vgpt_status* vgpt_stream_set_kv_mode(vgpt_stream* stream, vgpt_kv_mode mode);

/* Copies and encodes the frame into the stream's history (the newest M frames). */
VGPT_API vgpt_status* vgpt_stream_observe(vgpt_stream* stream, const vgpt_image* image);
/* 1 once M frames were observed since creation or reset, else 0 (also for NULL). */
VGPT_API int vgpt_stream_ready(vgpt_stream* stream);

/* Owned by the stream, valid until the next call on that stream (or its free). */
typedef struct vgpt_prediction {
    size_t struct_size;           /* set to sizeof(vgpt_prediction) before the call */
    const uint8_t* frames;        /* RGB8 [num_frames, height, width, 3], rows packed */
    int num_frames;               /* num_clips * G */
    int width, height;
    const float* latents;         /* [num_frames, C, h, w]: the denoised latents the frames decode */
    size_t latents_count;         /* num_frames * C * h * w */
    int64_t history_timestamp_ns; /* timestamp of the newest observed frame the prediction follows */
} vgpt_prediction;

/* The next num_clips * G frames; each predicted clip joins (a copy of) the history for the next.
 * num_clips >= 1, with at most VGPT_MAX_PREDICTION_BYTES of frames and latents in all. */
VGPT_API vgpt_status* vgpt_stream_predict(vgpt_stream* stream, int num_clips, vgpt_prediction* prediction);
/* The same with the initial noise given: noise_count = num_clips * G * C * h * w floats, clip-major
 * (clip k's noise [G, C, h, w] at k * G * C * h * w). The stream's generator is not advanced. */
VGPT_API vgpt_status* vgpt_stream_predict_with_noise(vgpt_stream* stream, int num_clips, const float* noise,
                                                     size_t noise_count, vgpt_prediction* prediction);

#ifdef __cplusplus
}
#endif

#endif /* VGPT_VGPT_H */
