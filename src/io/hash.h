// File hashes as A1111 shows them: "Model hash" = first 10 hex digits of the file's sha256.
#pragma once

#include <string>

#include "core/error.h"

namespace nb {

Result<std::string> sha256_file(const std::string& path);  // 64 lowercase hex digits
std::string sha256_hex(const void* data, size_t n);

}  // namespace nb
