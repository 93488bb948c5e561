// ONNX Runtime through its C API, loaded with dlopen: no link-time dependency, no process-wide state.
//
// The C++ wrapper (onnxruntime_cxx_api.h) keeps the API table in a process-global that every user of
// the wrapper in the process shares; we hold our own `const OrtApi*` per loaded library instead and
// wrap the few objects we need in small RAII owners.
#pragma once

#define ORT_API_MANUAL_INIT  // no static initializer may call OrtGetApiBase: the library is dlopen'ed
#include <onnxruntime_c_api.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"

namespace vgpt {

// The C API version we request. Every function we call exists since ONNX Runtime 1.16 (API 16), and a
// library serves any API version up to its own, so 1.16 and every newer release can run us.
inline constexpr uint32_t kOrtApiVersion = 16;
static_assert(kOrtApiVersion <= ORT_API_VERSION, "the ONNX Runtime headers are older than the API we request");

struct OrtLibrary {
    const OrtApi* api = nullptr;
    std::string path;     // what was loaded (or reused)
    std::string version;  // the library's GetVersionString()
};

// Finds and loads the library: `explicit_path` if given (and only it); else a libonnxruntime.so.1
// already loaded in the process (RTLD_NOLOAD); else $VGPT_ORT_LIBRARY (and only it); else the
// onnxruntime wheel's capi/libonnxruntime.so.1.* in the folder given at build time
// (VGPT_ORT_WHEEL_DIR); else libonnxruntime.so.1 on the loader's path. The library stays loaded for
// the life of the process (ONNX Runtime is not written to be unloaded). Throws VGPT_RUNTIME_LIBRARY.
std::shared_ptr<const OrtLibrary> load_ort(const char* explicit_path);

// Throws VGPT_RUNTIME_LIBRARY (or `code`) with `what` and ONNX Runtime's message when status != NULL.
void check(const OrtApi* api, OrtStatus* status, const std::string& what, vgpt_code code = VGPT_RUNTIME_LIBRARY);

// Owners of ONNX Runtime objects: the release function for each type, and a unique_ptr-like holder.
inline void release(const OrtApi* a, OrtEnv* p) { a->ReleaseEnv(p); }
inline void release(const OrtApi* a, OrtSession* p) { a->ReleaseSession(p); }
inline void release(const OrtApi* a, OrtSessionOptions* p) { a->ReleaseSessionOptions(p); }
inline void release(const OrtApi* a, OrtMemoryInfo* p) { a->ReleaseMemoryInfo(p); }
inline void release(const OrtApi* a, OrtValue* p) { a->ReleaseValue(p); }
inline void release(const OrtApi* a, OrtIoBinding* p) { a->ReleaseIoBinding(p); }
inline void release(const OrtApi* a, OrtRunOptions* p) { a->ReleaseRunOptions(p); }
inline void release(const OrtApi* a, OrtTypeInfo* p) { a->ReleaseTypeInfo(p); }

template <typename T>
class OrtOwner {
public:
    OrtOwner() = default;
    OrtOwner(const OrtApi* api, T* p) : api_(api), p_(p) {}
    OrtOwner(OrtOwner&& o) noexcept : api_(o.api_), p_(std::exchange(o.p_, nullptr)) {}
    OrtOwner& operator=(OrtOwner&& o) noexcept {
        reset();
        api_ = o.api_, p_ = std::exchange(o.p_, nullptr);
        return *this;
    }
    OrtOwner(const OrtOwner&) = delete;
    OrtOwner& operator=(const OrtOwner&) = delete;
    ~OrtOwner() { reset(); }
    void reset() {
        if (p_) release(api_, std::exchange(p_, nullptr));
    }
    T* get() const { return p_; }

private:
    const OrtApi* api_ = nullptr;
    T* p_ = nullptr;
};

}  // namespace vgpt
