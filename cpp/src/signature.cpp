#include "signature.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <memory>

#include "error.hpp"
#include "untrusted.hpp"

namespace vgpt {
namespace {

constexpr const char* kSignatureFormat = "vgpt-ed25519-signature";  // export/signing.py SIGNATURE_FORMAT
constexpr size_t kMaxKeyBytes = 16 << 10;

using Key = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;

Key read_public_key(const std::string& path) {
    std::string pem;
    try {
        pem = read_document(path, "pass the .pub file of the signing key", kMaxKeyBytes);
    } catch (const Error& e) {
        throw Error(VGPT_INVALID_ARGUMENT, std::string("trusted key: ") + e.what());
    }
    std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())), &BIO_free);
    Key key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, &EVP_PKEY_free);
    if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
        throw Error(VGPT_INVALID_ARGUMENT, "trusted key " + path + " is not an Ed25519 public key in PEM form: pass "
                                           "the .pub file vgpt-export --new-signing-key wrote");
    }
    return key;
}

std::string raw_hex(EVP_PKEY* key) {
    unsigned char raw[32];
    size_t n = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1) throw Error(VGPT_INTERNAL, "cannot read an Ed25519 public key");
    static const char* digits = "0123456789abcdef";
    std::string hex;
    for (size_t i = 0; i < n; ++i) hex += {digits[raw[i] >> 4], digits[raw[i] & 15]};
    return hex;
}

bool from_hex(const std::string& hex, std::string& out) {
    if (hex.size() % 2) return false;
    out.clear();
    for (size_t i = 0; i < hex.size(); i += 2) {
        int v = 0;
        for (char c : {hex[i], hex[i + 1]}) {
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = v * 16 + d;
        }
        out += char(v);
    }
    return true;
}

}  // namespace

void check_signature(const std::string& root, const std::vector<std::string>& trusted_keys,
                     const std::string& manifest_bytes) {
    std::vector<Key> keys;
    for (const std::string& path : trusted_keys) keys.push_back(read_public_key(path));
    const std::string file = root + "/" + kSignature;
    struct stat s;
    if (stat(file.c_str(), &s) != 0) {
        throw Error(VGPT_BAD_BUNDLE, root + " is not signed (no " + kSignature + ") and trusted keys were given: load "
                                     "only bundles signed with vgpt-export --sign by a trusted key");
    }
    const std::string fix = std::string("sign it again with vgpt-export --sign, or remove ") + kSignature;
    const nlohmann::json doc = parse_object(read_document(file, fix), file, fix);
    std::string signer, signature;
    const bool ok = doc.value("format", std::string()) == kSignatureFormat && doc.contains("public_key") &&
                    doc["public_key"].is_string() && doc.contains("signature") && doc["signature"].is_string() &&
                    from_hex(doc["public_key"].get<std::string>(), signer) &&
                    from_hex(doc["signature"].get<std::string>(), signature);
    if (!ok) throw Error(VGPT_BAD_BUNDLE, file + " is not a vgpt signature; " + fix);
    EVP_PKEY* key = nullptr;
    for (const Key& k : keys) {
        if (raw_hex(k.get()) == doc["public_key"].get<std::string>()) key = k.get();
    }
    if (!key) {
        throw Error(VGPT_BAD_BUNDLE, root + " is signed by key " + doc["public_key"].get<std::string>().substr(0, 16) +
                                         "..., which is none of the " + std::to_string(keys.size()) +
                                         " trusted keys: it was not built by whom you trust; do not load it");
    }
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    const bool valid = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) == 1 &&
                       EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                                        signature.size(), reinterpret_cast<const unsigned char*>(manifest_bytes.data()),
                                        manifest_bytes.size()) == 1;
    if (!valid) {
        throw Error(VGPT_BAD_BUNDLE, root + ": the signature in " + kSignature + " does not match manifest.json: the "
                                     "manifest was changed after it was signed; do not load it");
    }
}

}  // namespace vgpt
