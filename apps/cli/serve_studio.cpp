#include "serve_studio.h"

#include <string>
#include <string_view>

namespace nb::cli {

namespace {

const StudioAsset* find_asset(std::string_view path) {
    for (size_t i = 0; i < kNStudioAssets; ++i)
        if (path == kStudioAssets[i].path) return &kStudioAssets[i];
    return nullptr;
}

void send(const StudioAsset& a, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.type);
    // The assets change only with the binary: a browser asks again on each load (cheap: all of it is ~60 KB).
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
}

}  // namespace

void add_studio_routes(httplib::Server& server) {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
        if (const StudioAsset* a = find_asset("/index.html")) send(*a, res);
    });
    server.Get(R"(/studio(/[A-Za-z0-9_./-]+))", [](const httplib::Request& req, httplib::Response& res) {
        const std::string path = req.matches[1];
        const StudioAsset* a = path.find("..") == std::string::npos ? find_asset(path) : nullptr;
        if (!a) {
            res.status = 404;
            res.set_content("{\"error\": \"HTTPException\", \"detail\": \"no such studio file\"}", "application/json");
            return;
        }
        send(*a, res);
    });
}

}  // namespace nb::cli
