#include <gtest/gtest.h>

#include <string>

#include "sha256.hpp"

namespace {

std::string hash(const std::string& text, size_t piece) {
    vgpt::Sha256 sha;
    for (size_t i = 0; i < text.size(); i += piece) sha.update(text.data() + i, std::min(piece, text.size() - i));
    return vgpt::Sha256::hex(sha.digest());
}

}  // namespace

// FIPS 180-4 example vectors, fed whole and in pieces that straddle the 64-byte blocks.
TEST(Sha256, StandardVectors) {
    for (size_t piece : {size_t(1), size_t(7), size_t(63), size_t(64), size_t(1000)}) {
        EXPECT_EQ(hash("", piece), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        EXPECT_EQ(hash("abc", piece), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        EXPECT_EQ(hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", piece),
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
    EXPECT_EQ(hash(std::string(1000000, 'a'), 4096),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
