// Reading files that may be hostile (the C++ side of vgpt/untrusted.py): a manifest is read only up
// to kMaxDocumentBytes, must be UTF-8 and one JSON object nested at most kMaxDepth levels, and a file
// name it gives must be a plain name inside its folder (no '/', no "..", no link leading out). Errors
// name the manifest's entry, never a fact about a file outside the folder.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace vgpt {

inline constexpr size_t kMaxDocumentBytes = size_t(16) << 20;  // vgpt/untrusted.py MAX_DOCUMENT_BYTES
inline constexpr int kMaxDepth = 64;                           // vgpt/untrusted.py MAX_DEPTH

// The bytes of `path`, refused (VGPT_BAD_BUNDLE, ending with `fix`) before reading beyond max_bytes;
// VGPT_NOT_FOUND when it cannot be opened.
std::string read_document(const std::string& path, const std::string& fix, size_t max_bytes = kMaxDocumentBytes);

// `text` (the bytes of `source`) as one JSON object; VGPT_BAD_BUNDLE for invalid JSON or UTF-8, a
// document nested deeper than kMaxDepth, or anything but an object.
nlohmann::json parse_object(const std::string& text, const std::string& source, const std::string& fix);

// One path component: not empty, "." or "..", no '/', '\\' or NUL.
bool plain_name(const std::string& name);

// folder + "/" + name for a plain name whose file, if it is a link, stays inside folder; else
// VGPT_BAD_BUNDLE naming `what` (the manifest's entry).
std::string inside(const std::string& folder, const std::string& name, const std::string& what);

}  // namespace vgpt
