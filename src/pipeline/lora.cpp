#include "pipeline/lora.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "io/hash.h"
#include "io/mapped_file.h"

namespace nb::pipeline {

namespace fs = std::filesystem;

namespace {

Result<std::string> find_by_stem(const std::string& name, const std::string& dir) {
    if (dir.empty())
        return make_error(Errc::missing,
                          "prompt uses <lora:{}>, but no LoRA folder was given (--lora-model-dir)", name);
    const fs::path direct = fs::path(dir) / (name + ".safetensors");
    std::error_code ec;
    if (fs::is_regular_file(direct, ec)) return direct.string();
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::path& p = it->path();
        if (p.extension() == ".safetensors" && p.stem() == name && fs::is_regular_file(p, ec))
            return p.string();
    }
    return make_error(Errc::missing, "LoRA '{}' not found: no {}.safetensors in {}", name, name, dir);
}

}  // namespace

Result<std::vector<LoraRequest>> lora_requests(const std::vector<text::LoraTag>& tags, const std::string& dir,
                                               const std::vector<LoraWeight>& extra) {
    std::vector<LoraRequest> out;
    for (const auto& t : tags) {
        // A file given directly replaces a tag of the same name (an image remade from its infotext with the
        // same --lora again must not get that LoRA twice).
        if (std::ranges::any_of(extra, [&](const LoraWeight& e) { return fs::path(e.path).stem() == t.name; }))
            continue;
        NB_TRY(path, find_by_stem(t.name, dir));
        out.push_back({t.name, path, float(t.te_weight), float(t.unet_weight)});
    }
    for (const auto& e : extra)
        out.push_back({fs::path(e.path).stem().string(), e.path, e.te_weight, e.unet_weight});
    return out;
}

Result<std::string> addnet_hash(const std::string& path) {
    NB_TRY(f, MappedFile::open(path));
    if (f->size() < 8) return make_error(Errc::format, "{}: too short for a safetensors file", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | f->data()[i];  // little-endian header length
    if (n > f->size() - 8) return make_error(Errc::format, "{}: header length {} exceeds the file", path, n);
    return sha256_hex(f->data() + 8 + n, f->size() - 8 - n);
}

Result<std::shared_ptr<const lora::LoraFile>> LoraSet::file(const std::string& path) {
    if (auto it = files_.find(path); it != files_.end()) return it->second;
    NB_TRY(f, lora::LoraFile::open(path));
    auto p = std::make_shared<const lora::LoraFile>(std::move(f));
    files_.emplace(path, p);
    return p;
}

Result<std::vector<std::string>> LoraSet::activate(SDModel& m, const std::vector<LoraRequest>& reqs) {
    std::vector<lora::LoraUse> uses;
    for (const auto& r : reqs) {
        NB_TRY(f, file(r.path));
        uses.push_back({f, r.te_weight, r.unet_weight});
    }
    return state_.apply(m.weights, uses);
}

Result<std::string> LoraSet::hashes(const std::vector<LoraRequest>& reqs) {
    std::string out;
    for (const auto& r : reqs) {
        auto it = hashes_.find(r.path);
        if (it == hashes_.end()) {
            NB_TRY(h, addnet_hash(r.path));
            it = hashes_.emplace(r.path, h.substr(0, 12)).first;
        }
        std::string name;  // as A1111 extra_networks_lora: str.translate removing ':' and ','
        for (char c : r.name)
            if (c != ':' && c != ',') name += c;
        if (!out.empty()) out += ", ";
        out += name + ": " + it->second;
    }
    return out;
}

}  // namespace nb::pipeline
