#include <sys/mman.h>
#include <unistd.h>

#include "io/weight_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "io/torch_zip.h"

namespace nb {

namespace fs = std::filesystem;

namespace {

bool has_zip_magic(const std::string& path) {
    char m[4] = {};
    std::ifstream f(path, std::ios::binary);
    f.read(m, 4);
    return f.gcount() == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

}  // namespace

Result<WeightStore> WeightStore::open(const std::string& path) {
    std::error_code ec;
    auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) return make_error(Errc::io, "{}: no such file or folder", path);
    if (fs::is_directory(st)) return open_diffusers(path);

    WeightStore ws;
    ws.path_ = path;
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const bool torch = ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin" ||
                       (ext != ".safetensors" && has_zip_magic(path));
    if (torch) {
        NB_TRY(z, TorchZip::open(path));
        auto src = std::make_shared<const TorchZip>(std::move(z));
        ws.format_ = "torch-zip";
        if (!src->unwrapped_key().empty()) ws.metadata_["torch_zip.unwrapped"] = src->unwrapped_key();
        for (const auto& e : src->entries()) ws.entries_.push_back(e);  // already unique and sorted
        ws.sources_.push_back(std::move(src));
    } else {
        NB_TRY(s, SafeTensors::open(path));
        auto src = std::make_shared<const SafeTensors>(std::move(s));
        ws.format_ = "safetensors";
        ws.metadata_ = src->metadata();
        ws.entries_ = src->entries();
        ws.sources_.push_back(std::move(src));
    }
    if (auto r = ws.finish(); !r) return std::unexpected(r.error());
    return ws;
}

Result<void> WeightStore::finish() {
    std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    for (size_t i = 1; i < entries_.size(); ++i)
        if (entries_[i].name == entries_[i - 1].name)
            return make_error(Errc::format, "{}: tensor '{}' is defined twice ({} and {})", path_, entries_[i].name,
                              entries_[i - 1].source, entries_[i].source);
    std::sort(unused_.begin(), unused_.end());
    std::sort(reshaped_.begin(), reshaped_.end());
    return {};
}

const TensorEntry* WeightStore::find(std::string_view name) const {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                               [](const TensorEntry& e, std::string_view n) { return e.name < n; });
    return it != entries_.end() && it->name == name ? &*it : nullptr;
}

Result<Tensor> WeightStore::load_f32(std::string_view name) const {
    const TensorEntry* e = find(name);
    if (!e) return make_error(Errc::missing, "{}: no tensor named '{}'", path_, name);
    return entry_to_f32(*e);
}

}  // namespace nb

namespace nb {

void WeightStore::drop_resident_pages() const {
    for (const auto& e : entries_) drop_entry_pages(e);
}

}  // namespace nb
