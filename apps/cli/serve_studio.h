// The studio: the single-page web UI that `nanobanana serve` answers at `/` (apps/studio/, compiled into the
// binary by cmake/embed_files.cmake). It talks only to the server's own /sdapi/v1 API.
#pragma once

#include <cstddef>

#include <httplib.h>

namespace nb::cli {

struct StudioAsset {
    const char* path;  // URL path under /studio ("/index.html", "/js/main.js")
    const char* type;  // Content-Type
    const unsigned char* data;
    size_t size;
};
extern const StudioAsset kStudioAssets[];  // generated: build/apps/cli/studio_assets.cpp
extern const size_t kNStudioAssets;

// GET / (the studio's index.html) and GET /studio/<file>; an unknown file is 404.
void add_studio_routes(httplib::Server& server);

}  // namespace nb::cli
