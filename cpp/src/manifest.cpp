#include "manifest.hpp"

#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "error.hpp"
#include "sha256.hpp"
#include "signature.hpp"
#include "untrusted.hpp"

namespace vgpt {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "vgpt-onnx-bundle";
constexpr int kFormatVersion = 2;  // export/contract.py FORMAT_VERSION
constexpr const char* kPrecisionsQuantized[] = {"fp8", "int8"};  // export/contract.py QUANTIZED_PRECISIONS
constexpr const char* kManifestHash = "manifest_sha256";           // export/contract.py MANIFEST_HASH

// A double as Python's repr writes it (json.dumps): the shortest digits that round-trip, fixed
// notation for decimal exponents -5 < e < 16 (with ".0" when integral), else d.ddde+XX.
void python_float(double x, std::string& out) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
    std::string sci(buf, r.ptr);  // "-1.2345e-07"
    const bool negative = sci[0] == '-';
    const size_t e = sci.find('e');
    std::string digits;
    for (size_t i = negative; i < e; ++i) {
        if (sci[i] != '.') digits += sci[i];
    }
    const int exp10 = std::stoi(sci.substr(e + 1));
    if (negative) out += '-';
    if (exp10 < -4 || exp10 >= 16) {
        out += digits[0];
        if (digits.size() > 1) out += "." + digits.substr(1);
        char exp[16];
        std::snprintf(exp, sizeof(exp), "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        out += exp;
    } else if (exp10 < 0) {
        out += "0." + std::string(size_t(-exp10 - 1), '0') + digits;
    } else {
        const size_t point = size_t(exp10) + 1;
        if (digits.size() <= point) {
            out += digits + std::string(point - digits.size(), '0') + ".0";
        } else {
            out += digits.substr(0, point) + "." + digits.substr(point);
        }
    }
}

// A string as json.dumps writes it (ensure_ascii): \" \\ \b \f \n \r \t, every other character
// outside ' '..'~' as \uXXXX (UTF-16 surrogate pairs beyond the BMP).
void python_string(const std::string& s, std::string& out) {
    auto u = [&](unsigned v) {
        char b[16];
        std::snprintf(b, sizeof(b), "\\u%04x", v);
        out += b;
    };
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = s[i];
        unsigned cp = c, extra = 0;
        if (c >= 0xF0) cp = c & 0x07, extra = 3;
        else if (c >= 0xE0) cp = c & 0x0F, extra = 2;
        else if (c >= 0xC0) cp = c & 0x1F, extra = 1;
        for (unsigned k = 1; k <= extra && i + k < s.size(); ++k) cp = cp << 6 | (s[i + k] & 0x3F);
        i += 1 + extra;
        switch (cp) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (cp >= 0x20 && cp <= 0x7E) {
                    out += char(cp);
                } else if (cp >= 0x10000) {
                    u(0xD800 + ((cp - 0x10000) >> 10));
                    u(0xDC00 + ((cp - 0x10000) & 0x3FF));
                } else {
                    u(cp);
                }
        }
    }
    out += '"';
}

// json.dumps(value, sort_keys=True, separators=(",", ":")): what vgpt.integrity.canonical_sha256 hashes.
// nlohmann's objects are std::maps, sorted by UTF-8 bytes, which is Python's code point order. The
// depth is bounded by parse_object.
void canonical(const json& v, std::string& out) {
    switch (v.type()) {
        case json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, value] : v.items()) {
                if (!first) out += ',';
                first = false;
                python_string(key, out);
                out += ':';
                canonical(value, out);
            }
            out += '}';
            break;
        }
        case json::value_t::array: {
            out += '[';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ',';
                canonical(v[i], out);
            }
            out += ']';
            break;
        }
        case json::value_t::string: python_string(v.get_ref<const std::string&>(), out); break;
        case json::value_t::number_float: python_float(v.get<double>(), out); break;
        case json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; break;
        case json::value_t::null: out += "null"; break;
        default: out += v.dump();  // integers
    }
}

// Format 2 manifests record the sha256 of their canonical form without the field itself
// (export/contract.py _check_own_hash): an edited manifest is refused, a format 2 one without it too.
void check_own_hash(const json& m, int version, const std::string& file) {
    if (!m.contains(kManifestHash)) {
        if (version >= 2) throw Error(VGPT_BAD_BUNDLE, file + " lacks its " + kManifestHash + "; " + kRebuild);
        return;  // format 1 predates the field; its graph files are still checked
    }
    json body = m;
    body.erase(kManifestHash);
    std::string text;
    canonical(body, text);
    Sha256 sha;
    sha.update(text.data(), text.size());
    if (!m[kManifestHash].is_string() || Sha256::hex(sha.digest()) != m[kManifestHash].get<std::string>()) {
        throw Error(VGPT_BAD_BUNDLE, file + " was edited after the export (its content no longer matches its " +
                                         kManifestHash + "): the graphs bake in what it first said; " + kRebuild);
    }
}

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

Manifest read_manifest(const std::string& root, const char* layout_name, bool verify_hashes,
                       const std::vector<std::string>& trusted_keys) {
    const std::string file = root + "/" + kManifest;
    const std::string text = read_document(file, kRebuild);
    if (!trusted_keys.empty()) check_signature(root, trusted_keys, text);  // the very bytes parsed below
    const json m = parse_object(text, file, kRebuild);
    Manifest out;
    out.root = root;
    try {
        if (m.value("format", std::string()) != kFormat) {
            throw Error(VGPT_BAD_BUNDLE, file + ": format " + m.value("format", json()).dump() + ", expected \"" +
                                             kFormat + "\"");
        }
        const int version = m.value("format_version", 1);
        if (version > kFormatVersion) {
            throw Error(VGPT_BAD_BUNDLE, root + " was exported by a newer vgpt (format " + std::to_string(version) +
                                             "); upgrade the vgpt runtime");
        }
        check_own_hash(m, version, file);
        out.steps = m.at("sampler").at("steps").get<int>();
        const std::string precision = m.value("precision", std::string("fp32"));
        for (const char* q : kPrecisionsQuantized) out.quantized |= precision == q;
        if (m.contains("versions") && m.at("versions").contains("onnxruntime")) {
            out.ort_version = m.at("versions").at("onnxruntime").get<std::string>();
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
        out.folder = inside(root, out.layout_name, file + ": layout");
        const json& l = entry->at("layout");
        out.layout = {l.at("history_frames"), l.at("clip_frames"), l.at("latent_height"), l.at("latent_width"),
                      l.at("vae_downsample")};
        for (const auto& [name, g] : entry->at("graphs").items()) {
            GraphSpec spec{g.at("name"), g.at("file"), tensors(g.at("inputs")), tensors(g.at("outputs")), {}};
            const std::string what = file + ": " + out.layout_name + "." + name;
            bool listed = false;  // the file a session loads must be one whose hash is checked
            for (const auto& [fname, info] : g.at("files").items()) {
                inside(out.folder, fname, what + ".files");
                spec.files.push_back({fname, info.at("bytes").get<uint64_t>(), info.at("sha256")});
                listed |= fname == spec.file;
            }
            inside(out.folder, spec.file, what + ".file");
            if (!listed) {
                throw Error(VGPT_BAD_BUNDLE, what + ".files has no record of " + spec.file + "; " + kRebuild);
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
            const std::string path = inside(out.folder, f.name, file + ": " + name + ".files");
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
