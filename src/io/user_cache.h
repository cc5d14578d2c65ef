// The per-user cache folder: $XDG_CACHE_HOME/nanobanana, else ~/.cache/nanobanana. It holds what can be made
// again (file hashes, bench's random-weight checkpoints); nothing in it is needed to run.
#pragma once

#include <filesystem>

#include "core/error.h"

namespace nb {

// The folder, created if missing.
Result<std::filesystem::path> user_cache_folder();

}  // namespace nb
