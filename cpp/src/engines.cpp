#include "engines.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.hpp"
#include "model.hpp"  // shape_text
#include "sha256.hpp"
#include "untrusted.hpp"

namespace vgpt {
namespace {

using nlohmann::json;

constexpr const char* kRebuildEngines = "rebuild them with vgpt-build on this machine";
constexpr const char* kStreamGraphs[] = {kEncoder, kPrefill, kDenoise, kDecoder};

bool has_manifest(const std::string& folder) {
    struct stat s;
    return stat((folder + "/" + kEngineManifest).c_str(), &s) == 0 && S_ISREG(s.st_mode);
}

// "10.7.0.post1" -> {10, 7, 0}: the leading digits of up to three dot-separated pieces.
std::vector<int> version_triple(const std::string& text) {
    std::vector<int> parts;
    std::stringstream in(text);
    std::string piece;
    while (parts.size() < 3 && std::getline(in, piece, '.')) {
        size_t n = 0;
        while (n < piece.size() && piece[n] >= '0' && piece[n] <= '9') ++n;
        if (n == 0) break;
        parts.push_back(std::stoi(piece.substr(0, n)));
    }
    return parts;
}

}  // namespace

std::string find_engines(const std::string& path) {
    if (path.empty()) throw Error(VGPT_INVALID_ARGUMENT, "the engines path is empty");
    const bool plan = path.size() > 5 && path.compare(path.size() - 5, 5, ".plan") == 0;
    const std::string folder = plan ? (path.rfind('/') == std::string::npos ? "." : path.substr(0, path.rfind('/')))
                                    : path;
    if (!has_manifest(folder)) {
        throw Error(VGPT_NOT_FOUND, folder + " has no " + kEngineManifest +
                                        ": build engines with vgpt-build --bundle B --out DIR, and load DIR");
    }
    return folder;
}

EngineManifest read_engine_manifest(const std::string& folder) {
    const std::string file = folder + "/" + kEngineManifest;
    const json j = parse_object(read_document(file, kRebuildEngines), file, kRebuildEngines);
    EngineManifest m;
    m.folder = folder;
    try {
        if (j.value("format", std::string()) != kEngineFormat) {
            throw Error(VGPT_BAD_BUNDLE, file + " is not a vgpt engine manifest (format " +
                                             j.value("format", json()).dump() + ", expected \"" + kEngineFormat + "\")");
        }
        m.tensorrt_version = j.at("tensorrt_version");
        m.gpu_name = j.at("gpu").at("name");
        const json& cc = j.at("gpu").at("compute_capability");
        m.capability_major = cc.at(0), m.capability_minor = cc.at(1);
        m.layout = j.at("layout");
        m.bundle = j.at("bundle");
        m.precision = j.at("builder").at("precision");
        m.steps = j.at("sampler").at("steps");
        for (const auto& [graph, p] : j.at("plans").items()) {
            const std::string name = p.at("file");
            inside(folder, name, file + ": plans." + graph + ".file");
            m.plans[graph] = {name, p.at("bytes"), p.at("sha256")};
        }
        for (const auto& [graph, sha] : j.at("source_graphs_sha256").items()) m.source_sha256[graph] = sha;
    } catch (const json::exception& e) {
        throw Error(VGPT_BAD_BUNDLE, file + " is not valid JSON or lacks a field (" + std::string(e.what()) + "); " +
                                         kRebuildEngines);
    }
    for (const char* g : kStreamGraphs) {
        if (!m.plans.count(g)) {
            throw Error(VGPT_BAD_BUNDLE, file + " lists no " + g + " engine; " + kRebuildEngines);
        }
    }
    return m;
}

TensorRTHost tensorrt_host(int32_t lib_version, const std::string& gpu_name, int capability_major,
                           int capability_minor) {
    TensorRTHost host;
    host.major = lib_version / 10000, host.minor = lib_version / 100 % 100, host.patch = lib_version % 100;
    host.gpu_name = gpu_name;
    host.capability_major = capability_major, host.capability_minor = capability_minor;
    return host;
}

void check_engine_host(const EngineManifest& m, const TensorRTHost& host) {
    const std::vector<int> built = version_triple(m.tensorrt_version);
    const std::string here =
        std::to_string(host.major) + "." + std::to_string(host.minor) + "." + std::to_string(host.patch);
    if (built.size() != 3 || built != std::vector<int>{host.major, host.minor, host.patch}) {
        throw Error(VGPT_BAD_BUNDLE, "the engines in " + m.folder + " were built with TensorRT " + m.tensorrt_version +
                                         ", this is TensorRT " + here + ": " + kRebuildEngines);
    }
    if (m.gpu_name != host.gpu_name || m.capability_major != host.capability_major ||
        m.capability_minor != host.capability_minor) {
        auto sm = [](int a, int b) { return std::to_string(a) + "." + std::to_string(b); };
        throw Error(VGPT_BAD_BUNDLE, "the engines in " + m.folder + " were built for " + m.gpu_name + " (sm " +
                                         sm(m.capability_major, m.capability_minor) + "), this is " + host.gpu_name +
                                         " (sm " + sm(host.capability_major, host.capability_minor) +
                                         "): rebuild them with vgpt-build on this GPU");
    }
}

void check_plan_files(const EngineManifest& m, bool verify_hashes) {
    for (const auto& [graph, plan] : m.plans) {
        const std::string path = inside(m.folder, plan.file, m.folder + "/" + kEngineManifest + ": plans." + graph);
        struct stat s;
        if (stat(path.c_str(), &s) != 0 || !S_ISREG(s.st_mode)) {
            throw Error(VGPT_BAD_BUNDLE, path + " is missing (" + graph + " engine); " + kRebuildEngines);
        }
        if (uint64_t(s.st_size) != plan.bytes) {
            throw Error(VGPT_BAD_BUNDLE, path + " has " + std::to_string(s.st_size) + " bytes, the manifest says " +
                                             std::to_string(plan.bytes) + ": truncated or replaced; " + kRebuildEngines);
        }
        if (verify_hashes && sha256_file(path) != plan.sha256) {
            throw Error(VGPT_BAD_BUNDLE, path + " does not match its sha256 in " + kEngineManifest + ": " +
                                             kRebuildEngines);
        }
    }
}

void check_sources(const EngineManifest& m, const Manifest& bundle) {
    for (const char* g : kStreamGraphs) {
        const GraphSpec& spec = bundle.graphs.at(g);
        std::string now;
        for (const GraphFile& f : spec.files) {
            if (f.name == spec.file) now = f.sha256;
        }
        auto built = m.source_sha256.find(g);
        if (built == m.source_sha256.end() || built->second != now) {
            throw Error(VGPT_BAD_BUNDLE, "the " + std::string(g) + " engine in " + m.folder + " was not built from " +
                                             bundle.path(spec) + " as the bundle holds it now (re-exported?): " +
                                             kRebuildEngines);
        }
    }
}

CheckedEngines check_engine_folder(const std::string& path, const TensorRTHost& host, bool verify_hashes,
                                   const std::string& bundle_root) {
    CheckedEngines c{read_engine_manifest(find_engines(path)), Manifest{}};
    const EngineManifest& em = c.engines;
    check_engine_host(em, host);
    check_plan_files(em, verify_hashes);
    c.bundle = read_manifest(find_bundle(bundle_root.empty() ? em.bundle : bundle_root), em.layout.c_str(),
                             verify_hashes);
    if (c.bundle.steps != em.steps) {
        throw Error(VGPT_BAD_BUNDLE, em.folder + " was built for " + std::to_string(em.steps) + " steps, the bundle " +
                                         em.bundle + " now has " + std::to_string(c.bundle.steps) +
                                         ": rebuild the engines with vgpt-build");
    }
    check_sources(em, c.bundle);
    return c;
}

const DeviceBuffer& DeviceBuffers::buffer(const std::string& name) const {
    for (const DeviceBuffer& b : buffers) {
        if (b.name == name) return b;
    }
    throw Error(VGPT_INTERNAL, "no device buffer named " + name);
}

size_t DeviceBuffers::total_bytes() const {
    size_t n = 0;
    for (const DeviceBuffer& b : buffers) n += b.bytes;
    return n;
}

DeviceBuffers device_buffers(const Manifest& bundle) {
    const BindingPlan& plan = bundle.plan;
    DeviceBuffers out;
    for (const BufferSpec& b : plan.buffers_of({"encode", "prefill", "denoise", "decode"})) {
        out.buffers.push_back({b.name, b.bytes(), {}});
    }
    auto at = [&](const std::string& name) -> DeviceBuffer& {
        for (DeviceBuffer& b : out.buffers) {
            if (b.name == name) return b;
        }
        throw Error(VGPT_INTERNAL, "no device buffer named " + name);
    };
    for (const char* phase : {"encode", "prefill", "decode"}) {
        const Phase& p = plan.phase(phase);
        for (const auto* side : {&p.bindings.at(0).inputs, &p.bindings.at(0).outputs}) {
            for (const auto& [tensor, target] : *side) at(target.buffer).bindings.emplace_back(p.graph, tensor);
        }
    }
    const Phase& steps = plan.phase("denoise");
    for (size_t a = 0; a < 2; ++a) {
        for (const auto* side : {&steps.bindings.at(a).inputs, &steps.bindings.at(a).outputs}) {
            for (const auto& [tensor, target] : *side) out.steps[a][tensor] = target.buffer;
        }
    }
    out.io = {plan.target("encode", "frames").buffer,  plan.target("encode", "latents").buffer,
              plan.target("prefill", "history").buffer, plan.target("denoise", "z").buffer,
              plan.target("denoise", "step").buffer,   plan.result(bundle.steps),
              plan.target("decode", "latents").buffer, plan.target("decode", "frames").buffer};
    return out;
}

size_t activation_bytes(const std::vector<int64_t>& sizes) {
    constexpr int64_t kAlignment = 256;
    int64_t need = 1;
    for (int64_t n : sizes) {
        if (n < 0) throw Error(VGPT_BAD_BUNDLE, "an engine reports " + std::to_string(n) + " bytes of device memory");
        need = std::max(need, n);
    }
    return size_t((need + kAlignment - 1) / kAlignment * kAlignment);
}

void check_engine_tensor(const std::string& graph, const TensorSpec& spec, const std::string& dtype,
                         const std::vector<int64_t>& shape) {
    if (dtype != spec.dtype || shape != spec.shape) {
        throw Error(VGPT_BAD_BUNDLE, "the " + graph + " engine's '" + spec.name + "' is " + dtype + " " +
                                         shape_text(shape) + ", the bundle's graph says " + spec.dtype + " " +
                                         shape_text(spec.shape) + ": " + kRebuildEngines + " from this bundle");
    }
}

}  // namespace vgpt
