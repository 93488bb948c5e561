#include "manifest.hpp"

#include <sys/stat.h>

#include <algorithm>
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
constexpr int kFormatVersion = 3;  // export/contract.py FORMAT_VERSION
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


// export/registry.py PHASES: each phase's graph and how many bindings it cycles through (0: one per history
// frame), the required phases and those that exist only together.
struct PhaseRule {
    const char* name;
    const char* graph;
    int bindings;
};
constexpr PhaseRule kPhases[] = {{"encode", kEncoder, 1}, {"prefill", kPrefill, 1}, {"denoise", kDenoise, 2},
                                 {"decode", kDecoder, 1}, {"append", "append", 2},  {"denoise_alt", kDenoise, 2},
                                 {"push", kFrame, 0},     {"read", kRing, 1}};
constexpr const char* kRequiredPhases[] = {"encode", "prefill", "denoise", "decode"};
constexpr std::pair<const char*, const char*> kPhaseGroups[] = {{"append", "denoise_alt"}, {"push", "read"}};

std::string list_text(const std::vector<std::string>& names) {
    std::string out = "[";
    for (size_t i = 0; i < names.size(); ++i) out += (i ? ", '" : "'") + names[i] + "'";
    return out + "]";
}

std::map<std::string, Target> targets(const json& bound) {
    std::map<std::string, Target> out;
    for (const auto& [tensor, t] : bound.items()) {
        for (const auto& [key, value] : t.items()) {
            if (key != "buffer" && key != "slot") {
                throw Error(VGPT_BAD_BUNDLE, "binds '" + tensor + "' to " + t.dump() +
                                                 ": a target is {\"buffer\": NAME[, \"slot\": N]}");
            }
        }
        out[tensor] = {t.at("buffer").get<std::string>(), t.contains("slot") ? t.at("slot").get<int64_t>() : -1};
    }
    return out;
}

BindingPlan plan_of(const json& j) {
    if (!j.is_object() || j.size() != 2 || !j.contains("buffers") || !j.contains("phases")) {
        throw Error(VGPT_BAD_BUNDLE, "must be an object of 'buffers' and 'phases'");
    }
    BindingPlan plan;
    for (const json& b : j.at("buffers")) {
        plan.buffers.push_back({b.at("name"), b.at("shape").get<std::vector<int64_t>>(), b.at("dtype")});
    }
    for (const auto& [name, p] : j.at("phases").items()) {
        Phase phase{p.at("graph"), {}};
        for (const json& b : p.at("bindings")) phase.bindings.push_back({targets(b.at("inputs")), targets(b.at("outputs"))});
        plan.phases.emplace(name, std::move(phase));
    }
    return plan;
}

[[noreturn]] void plan_fail(const std::string& problem) { throw Error(VGPT_BAD_BUNDLE, problem); }

std::string shape_list(const std::vector<int64_t>& shape) {  // as Python prints a list: "[1, 4, 8, 8]"
    std::string out = "[";
    for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

void check_target(const BindingPlan& plan, const std::string& what, const TensorSpec& tensor, const Target& target) {
    const BufferSpec* b = nullptr;
    for (const BufferSpec& c : plan.buffers) {
        if (c.name == target.buffer) b = &c;
    }
    if (!b) plan_fail(what + " is bound to buffer '" + target.buffer + "', which the plan does not allocate");
    std::vector<int64_t> shape = b->shape;
    if (target.slot >= 0) {
        if (shape.empty() || target.slot >= shape[0]) {
            plan_fail(what + " is bound to slot " + std::to_string(target.slot) + " of '" + b->name + "', which has " +
                      std::to_string(shape.empty() ? 0 : shape[0]));
        }
        shape.erase(shape.begin());
    } else if (target.slot != -1) {
        plan_fail(what + " is bound to slot " + std::to_string(target.slot) + " of '" + b->name + "'");
    }
    if (shape != tensor.shape || b->dtype != tensor.dtype) {
        const std::string where = target.slot < 0 ? b->name : "a slot of " + b->name;
        plan_fail(what + " is " + tensor.dtype + " " + shape_list(tensor.shape) + ", bound to " + where + ": " +
                  b->dtype + " " + shape_list(shape));
    }
}

void check_flow(const BindingPlan& plan, int history_frames) {
    const Target& kv = plan.target("prefill", "kv_cache");
    for (const char* name : {"denoise", "denoise_alt"}) {
        if (!plan.has(name)) continue;
        const bool alt = std::string(name) == "denoise_alt";
        const Target& want = alt ? plan.target("append", "kv_next") : kv;
        for (size_t a = 0; a < 2; ++a) {
            if (plan.target(name, "kv_cache", a) != want) {
                plan_fail(std::string("phase '") + name + "' binding " + std::to_string(a) +
                          " reads the KV cache from '" + plan.target(name, "kv_cache", a).buffer +
                          "', not from what " + (alt ? "append" : "prefill") + " writes");
            }
            for (const auto& [src, dst] : {std::pair<const char*, const char*>{"z_next", "z"}, {"step_next", "step"}}) {
                if (plan.target(name, src, a) != plan.target(name, dst, 1 - a)) {
                    plan_fail(std::string("phase '") + name + "': binding " + std::to_string(a) + "'s " + src +
                              " is not binding " + std::to_string(1 - a) + "'s " + dst + ": the steps must feed each other");
                }
            }
        }
        if (plan.target(name, "z", 0) == plan.target(name, "z", 1)) {
            plan_fail(std::string("phase '") + name + "': both bindings read z from one buffer");
        }
    }
    if (plan.has("denoise_alt")) {
        for (size_t a = 0; a < 2; ++a) {
            for (const char* t : {"z", "step"}) {
                if (plan.target("denoise_alt", t, a) != plan.target("denoise", t, a)) {
                    plan_fail("phase 'denoise_alt' binding " + std::to_string(a) + " binds " + t +
                              " elsewhere than 'denoise'");
                }
            }
            if (plan.target("append", "kv_next", a) != plan.target("append", "kv_cache", 1 - a)) {
                plan_fail("phase 'append': binding " + std::to_string(a) + "'s kv_next is not binding " +
                          std::to_string(1 - a) + "'s kv_cache");
            }
        }
        if (plan.target("append", "kv_cache", 0) != kv) {
            plan_fail("phase 'append' binding 0 does not slide the KV cache prefill writes");
        }
    }
    if (plan.has("push")) {
        const Target& ring = plan.target("read", "ring");
        if (ring.slot >= 0) plan_fail("phase 'read' binds the ring to one slot of a buffer, not a whole one");
        for (int s = 0; s < history_frames; ++s) {
            if (plan.target("push", "frame_kv", size_t(s)) != Target{ring.buffer, s}) {
                plan_fail("phase 'push' binding " + std::to_string(s) + " does not write ring slot " +
                          std::to_string(s) + " of '" + ring.buffer + "'");
            }
        }
        if (plan.target("read", "kv_cache") != kv) plan_fail("phase 'read' does not write the KV cache prefill writes");
    }
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

size_t BufferSpec::bytes() const { return TensorSpec{name, shape, dtype}.bytes(); }

const BufferSpec& BindingPlan::buffer(const std::string& name) const {
    for (const BufferSpec& b : buffers) {
        if (b.name == name) return b;
    }
    throw Error(VGPT_BAD_BUNDLE, "the binding plan has no buffer '" + name + "'; " + kRebuild);
}

const Phase& BindingPlan::phase(const std::string& name) const {
    auto found = phases.find(name);
    if (found == phases.end()) throw Error(VGPT_BAD_BUNDLE, "the binding plan has no phase '" + name + "'; " + kRebuild);
    return found->second;
}

const Target& BindingPlan::target(const std::string& phase_name, const std::string& tensor, size_t binding) const {
    const Phase& p = phase(phase_name);
    if (binding >= p.bindings.size()) {
        throw Error(VGPT_BAD_BUNDLE, "phase '" + phase_name + "' has no binding " + std::to_string(binding));
    }
    const Binding& b = p.bindings[binding];
    for (const auto* side : {&b.inputs, &b.outputs}) {
        auto found = side->find(tensor);
        if (found != side->end()) return found->second;
    }
    throw Error(VGPT_BAD_BUNDLE, "phase '" + phase_name + "' binding " + std::to_string(binding) + " binds no '" +
                                     tensor + "'");
}

std::vector<BufferSpec> BindingPlan::buffers_of(const std::vector<std::string>& names) const {
    std::vector<BufferSpec> out;
    for (const BufferSpec& b : buffers) {
        bool used = false;
        for (const std::string& name : names) {
            for (const Binding& binding : phase(name).bindings) {
                for (const auto* side : {&binding.inputs, &binding.outputs}) {
                    for (const auto& [tensor, t] : *side) used |= t.buffer == b.name;
                }
            }
        }
        if (used) out.push_back(b);
    }
    return out;
}

BindingPlan parse_plan(const std::string& text) {
    try {
        return plan_of(json::parse(text));
    } catch (const json::exception& e) {
        throw Error(VGPT_BAD_BUNDLE, std::string("the binding plan lacks a field or has one of the wrong type (") +
                                         e.what() + ")");
    }
}

void check_plan(const BindingPlan& plan, const std::map<std::string, GraphSpec>& graphs, int history_frames,
                const std::string& where) {
    try {
        std::vector<std::string> names;
        for (const BufferSpec& b : plan.buffers) {
            if (std::find(names.begin(), names.end(), b.name) != names.end()) plan_fail("names a buffer twice");
            names.push_back(b.name);
            bool positive = true;
            for (int64_t n : b.shape) positive &= n >= 1;
            if (!positive || (b.dtype != "float32" && b.dtype != "float16" && b.dtype != "bfloat16" && b.dtype != "int64")) {
                plan_fail("buffer '" + b.name + "' is " + b.dtype + " " + shape_list(b.shape) +
                          ": not a tensor a runtime allocates");
            }
        }
        std::vector<std::string> unknown, missing;
        for (const auto& [name, phase] : plan.phases) {
            bool known = false;
            for (const PhaseRule& r : kPhases) known |= name == r.name;
            if (!known) unknown.push_back(name);
        }
        if (!unknown.empty()) plan_fail("has phases " + list_text(unknown) + " that no runtime runs");
        for (const char* p : kRequiredPhases) {
            if (!plan.has(p)) missing.push_back(p);
        }
        if (!missing.empty()) plan_fail("lacks the phases " + list_text(missing));
        for (const auto& [a, b] : kPhaseGroups) {
            if (plan.has(a) != plan.has(b)) {
                plan_fail("has only some of the phases " + list_text({a, b}) + ", which run together");
            }
        }
        for (const PhaseRule& rule : kPhases) {
            if (!plan.has(rule.name)) continue;
            const Phase& phase = plan.phase(rule.name);
            const std::string name = std::string("phase '") + rule.name + "'";
            const size_t count = rule.bindings ? size_t(rule.bindings) : size_t(history_frames);
            if (phase.graph != rule.graph) plan_fail(name + " runs graph '" + phase.graph + "'; it runs '" + rule.graph + "'");
            auto graph = graphs.find(rule.graph);
            if (graph == graphs.end()) plan_fail(name + " runs graph '" + rule.graph + "', which the layout does not hold");
            if (phase.bindings.size() != count) {
                plan_fail(name + " has " + std::to_string(phase.bindings.size()) + " bindings; it cycles through " +
                          std::to_string(count));
            }
            for (size_t i = 0; i < count; ++i) {
                const Binding& binding = phase.bindings[i];
                const std::string at = name + " binding " + std::to_string(i);
                for (const bool inputs : {true, false}) {
                    const std::vector<TensorSpec>& tensors = inputs ? graph->second.inputs : graph->second.outputs;
                    const std::map<std::string, Target>& bound = inputs ? binding.inputs : binding.outputs;
                    std::vector<std::string> want, have;
                    for (const TensorSpec& t : tensors) want.push_back(t.name);
                    for (const auto& [t, target] : bound) have.push_back(t);
                    std::sort(want.begin(), want.end());
                    if (want != have) {
                        plan_fail(at + " binds the " + (inputs ? "inputs " : "outputs ") + list_text(have) + "; graph '" +
                                  rule.graph + "' has " + list_text(want));
                    }
                    for (const TensorSpec& t : tensors) {
                        check_target(plan, at + ": " + rule.graph + "'s " + t.name, t, bound.at(t.name));
                    }
                }
                for (const auto& [o, out] : binding.outputs) {
                    for (const auto& [i_, in] : binding.inputs) {
                        if (out.buffer == in.buffer) {
                            plan_fail(at + " reads and writes the buffers ['" + out.buffer + "'] in one run");
                        }
                    }
                }
            }
        }
        check_flow(plan, history_frames);
    } catch (const Error& e) {
        throw Error(VGPT_BAD_BUNDLE, where + ": the binding plan is not one a runtime can bind by: " + e.what() + "; " +
                                         kRebuild);
    }
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
        if (!entry->contains("bindings")) {
            throw Error(VGPT_BAD_BUNDLE, file + ": layout " + out.layout_name + " has no binding plan (bundles of "
                                             "format 3 on record one; this one is format " + std::to_string(version) +
                                             "), which this runtime binds by; " + kRebuild);
        }
        try {
            out.plan = plan_of(entry->at("bindings"));
        } catch (const Error& e) {
            throw Error(VGPT_BAD_BUNDLE, file + ": " + out.layout_name + ".bindings " + e.what() + "; " + kRebuild);
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
