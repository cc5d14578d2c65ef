// Read-only memory mapping of a whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"

namespace nb {

class MappedFile {
public:
    static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // An error when the mapped file (the same inode, whatever its path names now) has become shorter than its
    // mapping: reading the lost pages would raise SIGBUS. Checked before weights released from memory are read
    // again; a truncation during that read is not caught (docs/security.md).
    Result<void> check_not_truncated() const;

private:
    MappedFile() = default;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    int fd_ = -1;  // kept open for check_not_truncated
    std::string path_;
};

}  // namespace nb
