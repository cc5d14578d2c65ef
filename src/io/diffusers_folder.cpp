// WeightStore::open_diffusers: a diffusers pipeline folder presented under LDM single-file names.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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

// A component's config.json (scheduler: scheduler_config.json) as a JSON object; an absent file is an empty object,
// an unreadable or malformed one an error naming it (the folder is a stranger's: nothing here is trusted).
Result<nlohmann::json> read_config(const fs::path& file) {
    std::ifstream in(file);
    if (!in) return nlohmann::json::object();
    std::stringstream text;
    text << in.rdbuf();
    auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
        return make_error(Errc::format, "{}: not a JSON object", file.string());
    return j;
}

// What the diffusers configs say that the tensors do not, as the metadata a single file would carry (the keys
// SDModel reads): the UNet's head layout (attention_head_dim, per level or one for all: a head count, as
// diffusers' legacy naming means it), the scheduler's prediction type, the text encoder's activation.
Result<void> read_configs(const fs::path& root, std::map<std::string, std::string>& meta) {
    NB_TRY(unet, read_config(root / "unet" / "config.json"));
    NB_TRY(sched, read_config(root / "scheduler" / "scheduler_config.json"));
    NB_TRY(te, read_config(root / "text_encoder" / "config.json"));
    // Fields of the wrong type count as absent (nlohmann's value() would throw on them).
    auto str = [](const nlohmann::json& j, const char* k) {
        return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
    };
    const auto& heads = unet.contains("attention_head_dim") ? unet["attention_head_dim"] : nlohmann::json();
    const auto& widths = unet.contains("block_out_channels") ? unet["block_out_channels"] : nlohmann::json();
    if (heads.is_number_integer() && heads.get<int64_t>() > 0) {
        meta["unet_config"] = nlohmann::json{{"num_heads", heads.get<int64_t>()}}.dump();
    } else if (heads.is_array() && widths.is_array() && heads.size() == widths.size() && !heads.empty()) {
        // SD 2.x: [5, 10, 20, 20] heads over [320, 640, 1280, 1280] channels, i.e. 64 channels a head everywhere.
        int64_t per_head = -1;
        for (size_t i = 0; i < heads.size(); ++i) {
            if (!heads[i].is_number_integer() || !widths[i].is_number_integer() || heads[i].get<int64_t>() <= 0)
                return make_error(Errc::format, "{}: attention_head_dim / block_out_channels must be positive integers",
                                  (root / "unet" / "config.json").string());
            const int64_t c = widths[i].get<int64_t>() / heads[i].get<int64_t>();
            if (per_head >= 0 && c != per_head)
                return make_error(Errc::unsupported, "{}: heads of {} channels in one level and {} in another",
                                  (root / "unet" / "config.json").string(), per_head, c);
            per_head = c;
        }
        meta["unet_config"] = nlohmann::json{{"num_head_channels", per_head}}.dump();
    }
    if (const auto p = str(sched, "prediction_type"); p == "v_prediction") meta["parameterization"] = "v";
    else if (p == "epsilon") meta["parameterization"] = "eps";
    if (const auto act = str(te, "hidden_act"); !act.empty()) meta["diffusers.text_encoder.hidden_act"] = act;
    if (te.contains("num_attention_heads") && te["num_attention_heads"].is_number_integer())  // as SD 1.x files say it
        meta["clip_config"] = nlohmann::json{{"num_attention_heads", te["num_attention_heads"].get<int64_t>()}}.dump();
    return {};
}

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
    if (auto r = read_configs(root, ws.metadata_); !r) return std::unexpected(r.error());

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
