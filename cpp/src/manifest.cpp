#include "manifest.hpp"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.hpp"
#include "sha256.hpp"

namespace vgpt {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "vgpt-onnx-bundle";
constexpr int kFormatVersion = 2;  // export/contract.py FORMAT_VERSION
constexpr const char* kPrecisionsQuantized[] = {"fp8", "int8"};  // export/contract.py QUANTIZED_PRECISIONS

bool is_file(const std::string& p) {
    struct stat s;
    return stat(p.c_str(), &s) == 0 && S_ISREG(s.st_mode);
}

bool exists(const std::string& p) {
    struct stat s;
    return stat(p.c_str(), &s) == 0;
}

std::string parent(const std::string& p) {
    auto end = p.find_last_not_of('/');
    if (end == std::string::npos) return "/";
    auto slash = p.rfind('/', end);
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : p.substr(0, slash);
}

std::vector<TensorSpec> tensors(const json& list) {
    std::vector<TensorSpec> out;
    for (const json& t : list) out.push_back({t.at("name"), t.at("shape").get<std::vector<int64_t>>(), t.at("dtype")});
    return out;
}

std::vector<int> version_pair(const std::string& text) {
    // "1.32.0+cpu" -> {1, 32}: the digits of the first two dot-separated pieces before any '+'.
    std::vector<int> parts;
    std::stringstream in(text.substr(0, text.find('+')));
    std::string piece;
    while (parts.size() < 2 && std::getline(in, piece, '.')) {
        std::string digits;
        for (char c : piece) {
            if (c >= '0' && c <= '9') digits += c;
        }
        parts.push_back(digits.empty() ? 0 : std::stoi(digits));
    }
    return parts;
}

}  // namespace

size_t TensorSpec::numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    return n;
}

size_t TensorSpec::bytes() const {
    size_t item = dtype == "int64" ? 8 : dtype == "float32" ? 4 : 2;  // float16, bfloat16
    return numel() * item;
}

const TensorSpec& GraphSpec::tensor(const std::string& tensor_name) const {
    for (const auto* list : {&inputs, &outputs}) {
        for (const TensorSpec& t : *list) {
            if (t.name == tensor_name) return t;
        }
    }
    throw Error(VGPT_BAD_BUNDLE, "the manifest's " + name + " graph has no tensor '" + tensor_name +
                                     "': the bundle was made by another vgpt version; " + kRebuild);
}

bool version_newer(const std::string& a, const std::string& b) { return version_pair(a) > version_pair(b); }

std::string find_bundle(const std::string& path) {
    if (path.empty()) throw Error(VGPT_INVALID_ARGUMENT, "the bundle path is empty");
    if (!exists(path)) throw Error(VGPT_NOT_FOUND, "bundle " + path + " does not exist");
    std::vector<std::string> candidates = {path, parent(path)};
    if (is_file(path)) candidates.push_back(parent(parent(path)));
    for (const std::string& c : candidates) {
        if (is_file(c + "/" + kManifest)) return c;
    }
    throw Error(VGPT_NOT_FOUND, std::string("no ") + kManifest + " at or above " + path +
                                    ": the export is incomplete or this is not a bundle; " + kRebuild);
}

Manifest read_manifest(const std::string& root, const char* layout_name, bool verify_hashes) {
    const std::string file = root + "/" + kManifest;
    std::ifstream in(file);
    if (!in) throw Error(VGPT_NOT_FOUND, "cannot open " + file);
    json m;
    try {
        m = json::parse(in);
    } catch (const json::exception& e) {
        throw Error(VGPT_BAD_BUNDLE, file + " is not valid JSON (" + e.what() + "); " + kRebuild);
    }
    Manifest out;
    out.root = root;
    try {
        if (m.value("format", std::string()) != kFormat) {
            throw Error(VGPT_BAD_BUNDLE, file + ": format " + m.value("format", json()).dump() + ", expected \"" +
                                             kFormat + "\"");
        }
        if (m.value("format_version", 0) > kFormatVersion) {
            throw Error(VGPT_BAD_BUNDLE, root + " was exported by a newer vgpt (format " +
                                             std::to_string(m.value("format_version", 0)) +
                                             "); upgrade the vgpt runtime");
        }
        out.steps = m.at("sampler").at("steps").get<int>();
        const std::string precision = m.value("precision", std::string("fp32"));
        for (const char* q : kPrecisionsQuantized) out.quantized |= precision == q;
        if (m.contains("versions") && m["versions"].contains("onnxruntime")) {
            out.ort_version = m["versions"]["onnxruntime"].get<std::string>();
        }
        const json& layouts = m.at("layouts");
        const json* entry = nullptr;
        std::string names;
        for (const json& e : layouts) {
            names += (names.empty() ? "" : ", ") + e.at("name").get<std::string>();
            if (!entry && (!layout_name || !*layout_name || e.at("name") == layout_name)) entry = &e;
        }
        if (!entry) {
            throw Error(VGPT_BAD_BUNDLE, root + " has no layout '" + (layout_name ? layout_name : "") +
                                             "'; it has: " + (names.empty() ? "none" : names));
        }
        out.layout_name = entry->at("name");
        out.folder = root + "/" + out.layout_name;
        const json& l = entry->at("layout");
        out.layout = {l.at("history_frames"), l.at("clip_frames"), l.at("latent_height"), l.at("latent_width"),
                      l.at("vae_downsample")};
        for (const auto& [name, g] : entry->at("graphs").items()) {
            GraphSpec spec{g.at("name"), g.at("file"), tensors(g.at("inputs")), tensors(g.at("outputs")), {}};
            for (const auto& [fname, info] : g.at("files").items()) {
                spec.files.push_back({fname, info.at("bytes").get<uint64_t>(), info.at("sha256")});
            }
            out.graphs.emplace(name, std::move(spec));
        }
    } catch (const json::exception& e) {
        throw Error(VGPT_BAD_BUNDLE, file + " lacks a field or has one of the wrong type (" + e.what() + "); " +
                                         kRebuild);
    }
    for (const char* g : {kEncoder, kPrefill, kDenoise, kDecoder}) {
        if (!out.graphs.count(g)) {
            throw Error(VGPT_BAD_BUNDLE, root + ": layout " + out.layout_name + " has no " + g + " graph; " + kRebuild);
        }
    }
    for (const auto& [name, graph] : out.graphs) {
        for (const GraphFile& f : graph.files) {
            const std::string path = out.folder + "/" + f.name;
            struct stat s;
            if (stat(path.c_str(), &s) != 0 || !S_ISREG(s.st_mode)) {
                throw Error(VGPT_BAD_BUNDLE, path + " is missing from the bundle; " + kRebuild);
            }
            if (uint64_t(s.st_size) != f.bytes) {
                throw Error(VGPT_BAD_BUNDLE, path + " has " + std::to_string(s.st_size) + " bytes, the manifest says " +
                                                 std::to_string(f.bytes) + ": truncated or replaced; " + kRebuild);
            }
            if (verify_hashes && sha256_file(path) != f.sha256) {
                throw Error(VGPT_BAD_BUNDLE, path + " does not match the manifest's sha256 (" + f.sha256 +
                                                 "): corrupted or replaced; " + kRebuild);
            }
        }
    }
    return out;
}

}  // namespace vgpt
