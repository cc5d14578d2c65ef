#include "io/hash.h"

#include <openssl/evp.h>

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <vector>

namespace nb {

namespace {
std::string to_hex(const unsigned char* md, unsigned len) {
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}
}  // namespace

std::string sha256_hex(const void* data, size_t n) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr);
    return to_hex(md, len);
}

// Streamed with read(): mapping a multi-GB checkpoint to hash it would add the whole file to the resident set.
Result<std::string> sha256_file(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) return make_error(Errc::io, "{}: cannot open", path);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    std::vector<unsigned char> buf(1 << 20);
    size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
    if (std::ferror(f.get())) return make_error(Errc::io, "{}: read error while hashing", path);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &len);
    return to_hex(md, len);
}

}  // namespace nb
