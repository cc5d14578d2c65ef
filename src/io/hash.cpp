#include "io/hash.h"

#include <openssl/evp.h>

#include <fmt/format.h>

#include "io/mapped_file.h"

namespace nb {

std::string sha256_hex(const void* data, size_t n) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}

Result<std::string> sha256_file(const std::string& path) {
    NB_TRY(f, MappedFile::open(path));
    return sha256_hex(f->data(), f->size());
}

}  // namespace nb
