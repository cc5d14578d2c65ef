#include "serve_support.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "nanobanana/a1111.h"
#include "nanobanana/engine.h"

namespace nb::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- models folder (A1111 layout) ----


namespace {

// Why an entry named like a model file cannot be one ("" when it can): said once per scan, and the entry skipped.
std::string unusable(const fs::directory_entry& entry) {
    std::error_code ec;
    const fs::file_status st = entry.status(ec);
    if (ec || !fs::exists(st)) return entry.is_symlink(ec) ? "a broken symbolic link" : "it cannot be examined";
    if (!fs::is_regular_file(st)) return "not a regular file";
    if (::access(entry.path().c_str(), R_OK) != 0) return fmt::format("it cannot be read ({})", std::strerror(errno));
    return "";
}

}  // namespace

std::vector<ModelFile> scan(const fs::path& dir, std::initializer_list<const char*> exts, bool folders) {
    std::vector<ModelFile> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) {  // the iterator cannot go on past an error: say so instead of listing fewer models silently
            std::fprintf(stderr, "warning: models folder %s: listing stopped: %s\n", dir.c_str(), ec.message().c_str());
            break;
        }
        const fs::path& p = it->path();
        std::error_code dir_ec;
        const bool diffusers = folders && it->is_directory(dir_ec) && fs::exists(p / "model_index.json", dir_ec);
        bool named = false;
        for (const char* e : exts) named = named || p.extension() == e;
        if (named && !diffusers && !it->is_directory(dir_ec)) {
            if (const std::string why = unusable(*it); !why.empty()) {
                std::fprintf(stderr, "warning: skipped %s: %s\n", p.c_str(), why.c_str());
                continue;
            }
        }
        const bool ok = diffusers || (named && it->is_regular_file(dir_ec));
        if (!ok) continue;
        if (diffusers) it.disable_recursion_pending();
        const std::string rel = p.lexically_relative(dir).string();  // not fs::relative: it resolves symlinks
        out.push_back({rel, fs::path(rel).replace_extension().string(), fs::absolute(p).string(), {}, {}});
    }
    std::ranges::sort(out, {}, &ModelFile::name);
    return out;
}

uint64_t size_on_disk(const fs::path& path) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return fs::file_size(path, ec);
    uint64_t total = 0;
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec)) total += it->file_size(ec);
    return total;
}

std::string source_parameters(const std::string& base64_image) {
    std::string_view text = base64_image;
    if (text.starts_with("data:") && text.find(',') != std::string_view::npos) text.remove_prefix(text.find(',') + 1);
    auto bytes = a1111::decode_base64(text, "image");
    if (!bytes) return "";
    auto params = png_parameters(*bytes);
    return params ? *params : "";
}

std::vector<ModelFile> take_vaes(std::vector<ModelFile>& checkpoints, const fs::path& vae_dir) {
    auto beside = [](const ModelFile& m) {
        return m.name.ends_with(".vae.safetensors") || m.name.ends_with(".vae.ckpt") || m.name.ends_with(".vae.pt");
    };
    std::vector<ModelFile> vaes;
    std::ranges::copy_if(checkpoints, std::back_inserter(vaes), beside);
    std::erase_if(checkpoints, beside);
    std::ranges::copy(scan(vae_dir, {".safetensors", ".ckpt", ".pt"}), std::back_inserter(vaes));
    return vaes;
}

std::string vae_choice(const std::string& sd_vae, const std::vector<ModelFile>& vaes, std::string& error) {
    if (sd_vae == "Automatic" || sd_vae == "auto") return "auto";
    if (sd_vae == "None") return "none";
    for (const auto& v : vaes)
        if (sd_vae == fs::path(v.name).filename().string() || sd_vae == v.name) return v.path;
    error = "unknown VAE '" + sd_vae + "' (GET /sdapi/v1/sd-vae lists them; or Automatic, None)";
    return "";
}

// OpenAI /v1/images/edits (multipart): `image` (PNG/JPEG), optional `mask` (PNG whose transparent pixels mark
// what to repaint; without one the image's own transparency), prompt, n, size, response_format. Runs as an
// A1111 inpaint of the transparent area with "latent noise" and full strength (OpenAI regenerates the area).
void openai_edits_to_a1111(const httplib::Request& req, json& a1111, std::string& error) {
    auto field = [&](const char* k) { return req.has_file(k) ? req.get_file_value(k).content : std::string(); };
    const std::string image = field("image"), mask = field("mask"), prompt = field("prompt");
    if (image.empty()) error = "'image' is required";
    else if (prompt.empty()) error = "'prompt' is required";
    if (!error.empty()) return;
    auto b64 = [](const std::string& bytes) {
        return a1111::encode_base64({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    };
    a1111 = {{"prompt", prompt}, {"init_images", {b64(image)}}, {"mask", b64(mask.empty() ? image : mask)},
             {"inpainting_mask_invert", 1}, {"inpainting_fill", 2}, {"denoising_strength", 1.0}};
    if (const std::string n = field("n"); !n.empty()) a1111["batch_size"] = std::atoi(n.c_str());
    if (const std::string size = field("size"); !size.empty()) {
        int w = 0, h = 0;
        if (std::sscanf(size.c_str(), "%dx%d", &w, &h) != 2) error = "'size' must be WIDTHxHEIGHT";
        a1111["width"] = w, a1111["height"] = h;
    } else if (auto im = decode_image(std::vector<uint8_t>(image.begin(), image.end()))) {  // the picture's size
        a1111["width"] = std::max(8, im->width / 8 * 8), a1111["height"] = std::max(8, im->height / 8 * 8);
    }
    if (const std::string steps = field("steps"); !steps.empty()) a1111["steps"] = std::atoi(steps.c_str());
}

// RAM from /proc/meminfo and this process's peak RSS (A1111 /memory: ram {free, used, total}, cuda error).
json memory() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    long long kb = 0, total = 0, avail = 0;
    std::string unit;
    while (f >> key >> kb >> unit) {
        if (key == "MemTotal:") total = kb;
        if (key == "MemAvailable:") avail = kb;
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return {{"ram", {{"free", avail * 1024}, {"used", (total - avail) * 1024}, {"total", total * 1024},
                     {"process_peak_rss", int64_t(ru.ru_maxrss) * 1024}}},
            {"cuda", {{"error", "nanobanana runs on the CPU"}}}};
}

bool client_connected(int local_port, int remote_port) {
    if (local_port <= 0 || remote_port <= 0) return true;  // not a TCP request: nothing to tell
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream f(table);
        std::string line;
        std::getline(f, line);  // header
        while (std::getline(f, line)) {
            // "  sl  local_address rem_address   st ...": addresses as HEXIP:HEXPORT, st in hex.
            std::istringstream in(line);
            std::string sl, local, remote, state;
            if (!(in >> sl >> local >> remote >> state)) continue;
            const auto port = [](const std::string& a) {
                const size_t c = a.rfind(':');
                return c == std::string::npos ? -1 : int(std::strtol(a.c_str() + c + 1, nullptr, 16));
            };
            if (port(local) == local_port && port(remote) == remote_port)
                return state == "01";  // ESTABLISHED; CLOSE_WAIT (08) = the client closed its side
        }
    }
    return false;  // no such connection any more
}

std::string embeddings_folder(const std::string& models_dir, const std::string& model_path) {
    return models_dir.empty() ? (fs::path(model_path).parent_path() / "embeddings").string()
                              : (fs::path(models_dir) / "embeddings").string();
}

json embeddings_json(const std::vector<EmbeddingInfo>& embeddings) {
    json loaded = json::object(), skipped = json::object();
    auto text = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
    for (const auto& e : embeddings) {
        json j{{"step", e.step >= 0 ? json(e.step) : json(nullptr)}, {"sd_checkpoint", text(e.sd_checkpoint)},
               {"sd_checkpoint_name", text(e.sd_checkpoint_name)}, {"shape", e.shape}, {"vectors", e.vectors}};
        if (!e.skipped.empty()) j["reason"] = e.skipped;
        (e.skipped.empty() ? loaded : skipped)[e.name] = std::move(j);
    }
    return {{"loaded", std::move(loaded)}, {"skipped", std::move(skipped)}};
}

// base64 of "user:pass" for each allowed pair.
std::vector<std::string> auth_tokens(const std::string& spec) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= spec.size()) {
        size_t end = spec.find(',', start);
        if (end == std::string::npos) end = spec.size();
        const std::string pair = spec.substr(start, end - start);
        if (!pair.empty())
            out.push_back(a1111::encode_base64({reinterpret_cast<const uint8_t*>(pair.data()), pair.size()}));
        start = end + 1;
    }
    return out;
}

}  // namespace nb::cli
