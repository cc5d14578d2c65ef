#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nb {

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(Errc::io, "{}: cannot open: {}", path, std::strerror(errno));
    struct stat st{};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error(Errc::io, "{}: not a regular file", path);
    }
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
    f->size_ = size_t(st.st_size);
    if (f->size_ > 0) {
        void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            return make_error(Errc::io, "{}: mmap failed: {}", path, std::strerror(errno));
        }
        f->data_ = static_cast<const uint8_t*>(p);
    }
    f->fd_ = fd;
    return f;
}

Result<void> MappedFile::check_not_truncated() const {
    struct stat st{};
    if (fd_ >= 0 && fstat(fd_, &st) == 0 && uint64_t(st.st_size) < size_)
        return make_error(Errc::io, "{}: the file was truncated on disk ({} bytes, {} when it was loaded): load the model again",
                          path_, uint64_t(st.st_size), size_);
    return {};
}

MappedFile::~MappedFile() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace nb
