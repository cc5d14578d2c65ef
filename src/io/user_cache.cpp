#include "io/user_cache.h"

#include <cstdlib>

namespace nb {

namespace fs = std::filesystem;

Result<fs::path> user_cache_folder() {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    fs::path dir = xdg && *xdg ? fs::path(xdg) / "nanobanana" : fs::path(home ? home : "/tmp") / ".cache" / "nanobanana";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return make_error(Errc::io, "{}: cannot create cache folder: {}", dir.string(), ec.message());
    return dir;
}

}  // namespace nb
