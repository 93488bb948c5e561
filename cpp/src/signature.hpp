// Who made a bundle (the C++ side of export/signing.py): with trusted public keys, a bundle loads only
// when signature.json holds an Ed25519 signature, by one of them, of the exact bytes of manifest.json.
// Verified with OpenSSL's EVP interface (libcrypto), which reads the PEM keys vgpt-export and
// `openssl genpkey -algorithm ed25519` write.
#pragma once

#include <string>
#include <vector>

namespace vgpt {

inline constexpr const char* kSignature = "signature.json";

// Throws VGPT_BAD_BUNDLE unless root/signature.json signs `manifest_bytes` (the manifest as it will be
// parsed) with one of `trusted_keys` (paths of PEM public key files); VGPT_INVALID_ARGUMENT for a key
// file that is not an Ed25519 public key.
void check_signature(const std::string& root, const std::vector<std::string>& trusted_keys,
                     const std::string& manifest_bytes);

}  // namespace vgpt
