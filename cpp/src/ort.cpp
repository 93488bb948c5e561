#include "ort.hpp"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <mutex>

namespace vgpt {
namespace {

constexpr const char* kSoname = "libonnxruntime.so.1";

std::string dl_error() {
    const char* e = dlerror();
    return e ? e : "unknown dlopen error";
}

// The wheel ships libonnxruntime.so.1.<minor>.<patch> only (no libonnxruntime.so.1 link).
std::vector<std::string> wheel_candidates() {
    std::vector<std::string> found;
#ifdef VGPT_ORT_WHEEL_DIR
    glob_t g{};
    std::string pattern = std::string(VGPT_ORT_WHEEL_DIR) + "/libonnxruntime.so.1.*";
    if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
    }
    globfree(&g);
#endif
    return found;
}

std::shared_ptr<const OrtLibrary> from_handle(void* handle, const std::string& path) {
    dlerror();
    auto get_base = reinterpret_cast<const OrtApiBase*(ORT_API_CALL*)()>(dlsym(handle, "OrtGetApiBase"));
    if (!get_base) {
        throw Error(VGPT_RUNTIME_LIBRARY, path + " is not an ONNX Runtime library (no OrtGetApiBase symbol)");
    }
    const OrtApiBase* base = get_base();
    auto lib = std::make_shared<OrtLibrary>();
    lib->path = path;
    lib->version = base->GetVersionString();
    lib->api = base->GetApi(kOrtApiVersion);
    if (!lib->api) {
        throw Error(VGPT_RUNTIME_LIBRARY, "ONNX Runtime " + lib->version + " at " + path + " is too old: vgpt needs "
                                              "its C API version " + std::to_string(kOrtApiVersion) +
                                              " (ONNX Runtime 1." + std::to_string(kOrtApiVersion) +
                                              " or newer); set the ort_library option or VGPT_ORT_LIBRARY");
    }
    return lib;
}

}  // namespace

std::shared_ptr<const OrtLibrary> load_ort(const char* explicit_path) {
    const int flags = RTLD_NOW | RTLD_LOCAL;
    auto open_only = [&](const std::string& path, const char* source) {
        void* h = dlopen(path.c_str(), flags | RTLD_NOLOAD);
        if (!h) h = dlopen(path.c_str(), flags);
        if (!h) {
            throw Error(VGPT_RUNTIME_LIBRARY, std::string("cannot load ONNX Runtime from ") + path + " (" + source +
                                                  "): " + dl_error());
        }
        return from_handle(h, path);
    };
    if (explicit_path && *explicit_path) return open_only(explicit_path, "the ort_library option");
    if (void* h = dlopen(kSoname, flags | RTLD_NOLOAD)) return from_handle(h, std::string(kSoname) + " (already loaded)");
    if (const char* env = std::getenv("VGPT_ORT_LIBRARY"); env && *env) return open_only(env, "VGPT_ORT_LIBRARY");
    std::string tried;
    for (const std::string& path : wheel_candidates()) {
        if (void* h = dlopen(path.c_str(), flags)) return from_handle(h, path);
        tried += "\n  " + path + ": " + dl_error();
    }
    if (void* h = dlopen(kSoname, flags)) return from_handle(h, kSoname);
    tried += std::string("\n  ") + kSoname + ": " + dl_error();
    throw Error(VGPT_RUNTIME_LIBRARY, "cannot find ONNX Runtime; tried:" + tried +
                                          "\nset the ort_library option or VGPT_ORT_LIBRARY to its "
                                          "libonnxruntime.so (pip install onnxruntime ships one in "
                                          "onnxruntime/capi/)");
}

void check(const OrtApi* api, OrtStatus* status, const std::string& what, vgpt_code code) {
    if (!status) return;
    std::string message = api->GetErrorMessage(status);
    api->ReleaseStatus(status);
    throw Error(code, what + ": " + message);
}

}  // namespace vgpt
