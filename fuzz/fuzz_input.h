// What the fuzz targets share: the input as a file (the readers take paths and mmap them, as they do with a
// user's files) and small checks that make a wrong answer crash instead of passing silently.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace nb::fuzz {

// The bytes in an anonymous in-memory file, opened by path ("/proc/self/fd/N"); closed by the destructor.
class InputFile {
public:
    InputFile(const uint8_t* data, size_t size) {
        fd_ = memfd_create("nb-fuzz", 0);
        if (fd_ < 0) std::abort();
        size_t done = 0;
        while (done < size) {
            ssize_t n = write(fd_, data + done, size - done);
            if (n <= 0) std::abort();
            done += size_t(n);
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~InputFile() { close(fd_); }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;
    const std::string& path() const { return path_; }

private:
    int fd_ = -1;
    std::string path_;
};

// An invariant the code under test promises; a broken one is a finding like a crash.
inline void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
        std::abort();
    }
}

}  // namespace nb::fuzz
