#include "untrusted.hpp"

#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "error.hpp"

namespace vgpt {
namespace {

std::string real_path(const std::string& path) {
    std::unique_ptr<char, void (*)(void*)> resolved(realpath(path.c_str(), nullptr), &std::free);
    return resolved ? std::string(resolved.get()) : std::string();
}

}  // namespace

std::string read_document(const std::string& path, const std::string& fix, size_t max_bytes) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) throw Error(VGPT_NOT_FOUND, "cannot open " + path);
    struct stat s;
    if (fstat(fileno(file.get()), &s) != 0 || !S_ISREG(s.st_mode)) {
        throw Error(VGPT_BAD_BUNDLE, path + " is not a regular file; " + fix);
    }
    if (uint64_t(s.st_size) > max_bytes) {
        throw Error(VGPT_BAD_BUNDLE, path + " is " + std::to_string(s.st_size) + " bytes, more than the " +
                                         std::to_string(max_bytes) + " a manifest may have; " + fix);
    }
    std::string text(size_t(s.st_size) + 1, '\0');  // one byte more: a file that grew is still capped
    const size_t n = std::fread(text.data(), 1, text.size(), file.get());
    if (std::ferror(file.get())) throw Error(VGPT_BAD_BUNDLE, "error reading " + path + "; " + fix);
    if (n > max_bytes) {
        throw Error(VGPT_BAD_BUNDLE, path + " is more than the " + std::to_string(max_bytes) +
                                         " bytes a manifest may have; " + fix);
    }
    text.resize(n);
    return text;
}

nlohmann::json parse_object(const std::string& text, const std::string& source, const std::string& fix) {
    using nlohmann::json;
    // The parser itself keeps its nesting on a heap stack; the bound keeps what reads the document
    // afterwards (the canonical hash, nlohmann's destructor) from recursing without limit.
    auto bounded = [&](int depth, json::parse_event_t event, json&) {
        if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
            depth >= kMaxDepth) {
            throw Error(VGPT_BAD_BUNDLE, source + " nests its JSON deeper than " + std::to_string(kMaxDepth) +
                                             " levels; " + fix);
        }
        return true;
    };
    json j;
    try {
        j = json::parse(text, bounded);
    } catch (const json::exception& e) {
        throw Error(VGPT_BAD_BUNDLE, source + " is not valid JSON or not UTF-8 (" + e.what() + "); " + fix);
    }
    if (!j.is_object()) {
        throw Error(VGPT_BAD_BUNDLE, source + " holds a JSON " + std::string(j.type_name()) + ", not an object; " + fix);
    }
    return j;
}

bool plain_name(const std::string& name) {
    return !name.empty() && name != "." && name != ".." && name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

std::string inside(const std::string& folder, const std::string& name, const std::string& what) {
    if (!plain_name(name)) {
        throw Error(VGPT_BAD_BUNDLE, what + " names \"" + name + "\": a manifest may only name files inside its own "
                                     "folder (a plain file name, no '/' or '..'); this file was crafted or damaged, "
                                     "do not load it");
    }
    const std::string path = folder + "/" + name;
    struct stat s;
    if (lstat(path.c_str(), &s) == 0 && S_ISLNK(s.st_mode)) {
        const std::string base = real_path(folder), target = real_path(path);
        if (base.empty() || target.compare(0, base.size() + 1, base + "/") != 0) {
            throw Error(VGPT_BAD_BUNDLE, what + ": " + path + " is a link that leads out of " + folder +
                                             "; copy the file into the folder instead");
        }
    }
    return path;
}

}  // namespace vgpt
