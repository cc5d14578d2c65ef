// File hashes as A1111 shows them: "Model hash" = first 10 hex digits of the file's sha256.
#pragma once

#include <string>

#include "core/error.h"

namespace nb {

Result<std::string> sha256_file(const std::string& path);  // 64 lowercase hex digits
// sha256_file through a per-user cache of results (hashes.json in io/user_cache.h's folder), as A1111 keeps
// its cache.json: keyed by the file's absolute path, used while the file's size and modification time are
// what they were when it was hashed. A checkpoint is gigabytes (2 s to hash an SD 1.5 file on this project's
// machines, on every CLI run); an unchanged one now costs a stat and a small read. The cache is best effort:
// when it cannot be read or written the file is hashed as sha256_file does.
Result<std::string> sha256_file_cached(const std::string& path);
std::string sha256_hex(const void* data, size_t n);

}  // namespace nb
