/* A stand-in for an ONNX Runtime too old for vgpt: it serves no C API version we ask for. */
#include <stddef.h>

typedef struct FakeApiBase {
    const void* (*GetApi)(unsigned version);
    const char* (*GetVersionString)(void);
} FakeApiBase;

static const void* get_api(unsigned version) {
    (void)version;
    return NULL;
}
static const char* version_string(void) { return "1.10.0"; }
static const FakeApiBase base = {get_api, version_string};

__attribute__((visibility("default"))) const FakeApiBase* OrtGetApiBase(void) { return &base; }
