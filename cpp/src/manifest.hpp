// An export bundle's manifest.json, read and checked (the C++ side of export/manifest.py).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vgpt {

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    std::string dtype;  // numpy name: float32, float16, bfloat16, int64
    size_t numel() const;
    size_t bytes() const;
};

struct GraphFile {
    std::string name;
    uint64_t bytes = 0;
    std::string sha256;
};

struct GraphSpec {
    std::string name, file;
    std::vector<TensorSpec> inputs, outputs;
    std::vector<GraphFile> files;  // the graph and any external-data files
    const TensorSpec& tensor(const std::string& tensor_name) const;  // throws VGPT_BAD_BUNDLE
};

// The layout's binding plan (export/registry.py BindingPlan, written by vgpt-export into the manifest's
// layouts[].bindings): every buffer a stream allocates, and per phase the bindings it cycles through, each
// tensor of its graph bound to a buffer or to one slot (a block along the first axis) of one.
struct BufferSpec {
    std::string name;
    std::vector<int64_t> shape;
    std::string dtype;
    size_t bytes() const;
};

struct Target {
    std::string buffer;
    int64_t slot = -1;  // -1: the whole buffer
    bool operator==(const Target& o) const { return buffer == o.buffer && slot == o.slot; }
    bool operator!=(const Target& o) const { return !(*this == o); }
};

struct Binding {
    std::map<std::string, Target> inputs, outputs;  // tensor -> where it is bound
};

struct Phase {
    std::string graph;
    std::vector<Binding> bindings;
};

struct BindingPlan {
    std::vector<BufferSpec> buffers;
    std::map<std::string, Phase> phases;
    bool has(const std::string& phase) const { return phases.count(phase) != 0; }
    const BufferSpec& buffer(const std::string& name) const;  // throws VGPT_BAD_BUNDLE
    const Phase& phase(const std::string& name) const;        // throws VGPT_BAD_BUNDLE
    // Where `tensor` is bound in binding `binding` of `phase`; throws VGPT_BAD_BUNDLE.
    const Target& target(const std::string& phase, const std::string& tensor, size_t binding = 0) const;
    // The buffers these phases bind, in the plan's order.
    std::vector<BufferSpec> buffers_of(const std::vector<std::string>& phases) const;
    // The buffer that holds the clip after `steps` alternating denoising steps.
    const std::string& result(int steps) const { return target("denoise", "z", size_t(steps % 2)).buffer; }
};

// The layout value object as the manifest records it (vgpt.layout.Layout.to_dict).
struct LayoutSpec {
    int history_frames = 0, clip_frames = 0, latent_height = 0, latent_width = 0, vae_downsample = 0;
    int height() const { return latent_height * vae_downsample; }
    int width() const { return latent_width * vae_downsample; }
};

struct Manifest {
    std::string root;         // the bundle folder
    std::string layout_name;  // the chosen layout, and its folder under root
    std::string folder;
    LayoutSpec layout;
    int steps = 0;
    bool quantized = false;     // fp8/int8 Q/DQ graphs: ONNX Runtime's basic optimization level only
    std::string ort_version;    // the ONNX Runtime the export was verified with ("" when not recorded)
    std::map<std::string, GraphSpec> graphs;
    BindingPlan plan;  // how a stream binds the graphs (checked by bundle_dims: check_plan)
    std::string path(const GraphSpec& graph) const { return folder + "/" + graph.file; }
};

inline constexpr const char* kManifest = "manifest.json";
inline constexpr const char* kEncoder = "encoder";
inline constexpr const char* kPrefill = "prefill";
inline constexpr const char* kDenoise = "denoise";
inline constexpr const char* kDecoder = "decoder";
// GPDiT's exact rolling window (export/gpdit_graphs.py): one frame's keys/values, and the ring read as a KV cache.
inline constexpr const char* kFrame = "frame";
inline constexpr const char* kRing = "ring";

// The bundle folder for a bundle folder, a layout folder or a file inside one (export/manifest.py's
// find_manifest). Throws VGPT_NOT_FOUND.
std::string find_bundle(const std::string& path);

// Reads root/manifest.json (with trusted_keys, only when signed by one of them: signature.hpp), checks
// its own hash (manifest_sha256), picks the layout (nullptr or "": the first), checks that every name
// it gives is a plain file name inside the bundle (untrusted.hpp), that every graph's file is among its
// hashed files, and that each exists with its recorded size and, when verify_hashes, its sha256.
// Throws VGPT_BAD_BUNDLE with what is wrong and how to rebuild.
Manifest read_manifest(const std::string& root, const char* layout_name, bool verify_hashes,
                       const std::vector<std::string>& trusted_keys = {});

// A plan from its JSON text (layouts[].bindings); throws VGPT_BAD_BUNDLE for a malformed one.
BindingPlan parse_plan(const std::string& text);

// What every runtime needs of a plan, the same rules as export/registry.py BindingPlan.check: known phases
// (encode, prefill, denoise, decode; append with denoise_alt; push with read), each running its graph with
// as many bindings as it cycles through, each binding binding exactly its graph's tensors to allocated buffers
// of their shapes and dtypes, and the flow between them (prefill's KV cache is what the steps, the ring and
// append read; each step writes the z and step the next reads; push k writes ring slot k). Throws
// VGPT_BAD_BUNDLE naming `where` and the first broken rule.
void check_plan(const BindingPlan& plan, const std::map<std::string, GraphSpec>& graphs, int history_frames,
                const std::string& where);

// Compares "major.minor" of two version strings as export/manifest.py's _version_tuple does.
bool version_newer(const std::string& a, const std::string& b);

}  // namespace vgpt
