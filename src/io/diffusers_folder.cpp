// WeightStore::open_diffusers: a diffusers pipeline folder presented under LDM single-file names.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/diffusers_names.h"
#include "io/torch_zip.h"
#include "io/weight_store.h"

namespace nb {

namespace fs = std::filesystem;

namespace {

struct Component {
    const char* folder;
    diffusers::Part part;
};
constexpr Component kComponents[] = {
    {"text_encoder", diffusers::Part::text_encoder},
    {"unet", diffusers::Part::unet},
    {"vae", diffusers::Part::vae},
};

// Weight files of one component folder, best group first: full-precision safetensors (all shards), fp16
// variant safetensors, then torch .bin (zip pickles) in the same order.
std::vector<fs::path> component_files(const fs::path& dir) {
    std::vector<fs::path> groups[4];
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(dir, ec)) {
        if (!f.is_regular_file()) continue;
        std::string n = f.path().filename().string();
        bool fp16 = n.find(".fp16.") != std::string::npos;
        if (n.ends_with(".safetensors")) groups[fp16 ? 1 : 0].push_back(f.path());
        else if (n.ends_with(".bin")) groups[fp16 ? 3 : 2].push_back(f.path());
    }
    for (auto& g : groups)
        if (!g.empty()) {
            std::sort(g.begin(), g.end());
            return g;
        }
    return {};
}

struct RawEntry {
    size_t component;
    TensorEntry entry;  // name = diffusers key
};

}  // namespace

Result<WeightStore> WeightStore::open_diffusers(const std::string& dir) {
    WeightStore ws;
    ws.path_ = dir;
    ws.format_ = "diffusers";
    const fs::path root(dir);
    std::ifstream index(root / "model_index.json");
    if (!index) return make_error(Errc::format, "{}: folder has no model_index.json (not a diffusers model)", dir);
    std::stringstream text;
    text << index.rdbuf();
    ws.metadata_["diffusers.model_index"] = text.str();

    std::vector<RawEntry> raw;
    std::vector<std::string> keys[std::size(kComponents)];
    for (size_t c = 0; c < std::size(kComponents); ++c) {
        for (const auto& file : component_files(root / kComponents[c].folder)) {
            const std::vector<TensorEntry>* entries = nullptr;
            if (file.extension() == ".bin") {
                NB_TRY(z, TorchZip::open(file.string()));
                auto src = std::make_shared<const TorchZip>(std::move(z));
                entries = &src->entries();
                ws.sources_.push_back(std::move(src));
            } else {
                NB_TRY(s, SafeTensors::open(file.string()));
                auto src = std::make_shared<const SafeTensors>(std::move(s));
                for (const auto& [k, v] : src->metadata()) ws.metadata_[std::string(kComponents[c].folder) + "." + k] = v;
                entries = &src->entries();
                ws.sources_.push_back(std::move(src));
            }
            for (const auto& e : *entries) {
                keys[c].push_back(e.name);
                raw.push_back({c, e});
            }
        }
    }
    if (raw.empty())
        return make_error(Errc::missing, "{}: no weights found in text_encoder/, unet/ or vae/ (*.safetensors, *.bin)",
                          dir);
    NB_TRY(layout, diffusers::detect_layout(keys[1], keys[2]));
    for (auto& [c, e] : raw) {
        auto renamed = diffusers::to_ldm(kComponents[c].part, e.name, layout);
        if (!renamed) {
            e.name = std::string(kComponents[c].folder) + "/" + e.name;
            ws.unused_.push_back(e.name);
        } else {
            e.name = renamed->ldm;
            if (renamed->linear_as_conv1x1 && e.shape.size() == 2) {
                e.shape.insert(e.shape.end(), {1, 1});  // Linear [C,C] == conv [C,C,1,1], same bytes
                ws.reshaped_.push_back(e.name);
            }
        }
        ws.entries_.push_back(std::move(e));
    }
    if (fs::is_directory(root / "tokenizer")) ws.tokenizer_dir_ = (root / "tokenizer").string();
    if (auto r = ws.finish(); !r) return std::unexpected(r.error());
    return ws;
}

}  // namespace nb
