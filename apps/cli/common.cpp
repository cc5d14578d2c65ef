// Helpers shared by the subcommands (see commands.h).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "commands.h"

namespace nb::cli {

namespace fs = std::filesystem;

std::string find_demo_model() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    std::vector<fs::path> dirs;
    if (!ec) dirs = {exe.parent_path() / "../share/nanobanana/demo", exe.parent_path() / "../../share/nanobanana/demo"};
#ifdef NB_DEMO_SOURCE_DIR
    dirs.emplace_back(NB_DEMO_SOURCE_DIR);
#endif
    for (const auto& d : dirs)
        if (fs::is_regular_file(d / "demo.safetensors", ec)) return (d / "demo.safetensors").lexically_normal().string();
    return {};
}

Result<void> check_output_png(const std::string& path, const char* flag) {
    std::string ext = fs::path(path).extension().string();
    std::ranges::transform(ext, ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (ext != ".png")
        return std::unexpected(Error{Errc::invalid_argument, std::string(flag) +
                                                                 ": only PNG output is supported, name it .png (got '" +
                                                                 path + "')"});
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return std::unexpected(Error{Errc::invalid_argument, std::string(flag) + ": folder " + dir.string() +
                                                                 " does not exist (got '" + path + "')"});
    if (access(dir.c_str(), W_OK | X_OK) != 0)
        return std::unexpected(
            Error{Errc::invalid_argument, std::string(flag) + ": folder " + dir.string() + " is not writable"});
    if (fs::is_directory(path, ec))
        return std::unexpected(Error{Errc::invalid_argument, std::string(flag) + ": " + path + " is a folder"});
    return {};
}

}  // namespace nb::cli
