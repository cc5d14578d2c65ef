// WeightStore::open_vae: a standalone VAE file, in LDM or diffusers naming, under LDM names.
#include <filesystem>

#include "io/diffusers_names.h"
#include "io/weight_store.h"

namespace nb {

namespace {

// A diffusers AutoencoderKL state dict: its down / up blocks are named down_blocks / up_blocks.
bool has_diffusers_names(const std::vector<TensorEntry>& entries) {
    for (const auto& e : entries)
        if (e.name.starts_with("encoder.down_blocks.") || e.name.starts_with("decoder.up_blocks.")) return true;
    return false;
}

}  // namespace

Result<WeightStore> WeightStore::open_vae(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return make_error(Errc::invalid_argument, "{}: is a folder; give the VAE's .safetensors file", path);
    NB_TRY(ws, open(path));
    if (!has_diffusers_names(ws.entries_)) return ws;
    std::vector<std::string> keys;
    for (const auto& e : ws.entries_) keys.push_back(e.name);
    NB_TRY(layout, diffusers::detect_layout({}, keys));
    for (auto& e : ws.entries_) {
        auto renamed = diffusers::to_ldm(diffusers::Part::vae, e.name, layout);
        if (!renamed) {
            ws.unused_.push_back(e.name);
            continue;
        }
        e.name = renamed->ldm;
        if (renamed->linear_as_conv1x1 && e.shape.size() == 2) {
            e.shape.insert(e.shape.end(), {1, 1});  // Linear [C,C] == conv [C,C,1,1], same bytes
            ws.reshaped_.push_back(e.name);
        }
    }
    if (auto r = ws.finish(); !r) return std::unexpected(r.error());
    return ws;
}

}  // namespace nb
