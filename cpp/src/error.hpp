// The one exception type inside the library; c_api.cpp turns it into a vgpt_status at the boundary.
#pragma once

#include <stdexcept>
#include <string>

#include "vgpt/vgpt.h"

namespace vgpt {

class Error : public std::runtime_error {
public:
    Error(vgpt_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
    vgpt_code code() const noexcept { return code_; }

private:
    vgpt_code code_;
};

// What every bundle error message ends with: how to get a good bundle back.
inline constexpr const char* kRebuild = "re-export it with vgpt-export (add --force to replace the folder)";

}  // namespace vgpt
