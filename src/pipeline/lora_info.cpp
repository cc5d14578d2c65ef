// `nanobanana info LORA.safetensors`: what a LoRA file holds, and the public is_lora_file / describe_lora.
#include <fmt/format.h>

#include <map>

#include "pipeline/lora.h"

namespace nb {

namespace pipeline {

namespace {

constexpr size_t kMaxMetadataValue = 160;  // ss_tag_frequency and friends can be kilobytes of JSON

// "4 (129 modules)" or "4 (117 modules), 8 (12 modules)".
template <class K>
std::string counts(const std::map<K, int>& m) {
    std::string s;
    for (const auto& [k, n] : m) s += fmt::format("{}{} ({} modules)", s.empty() ? "" : ", ", k, n);
    return s;
}

std::string module_kind(const lora::LoraModule& m) {
    const Shape& d = m.down.shape;
    if (d.size() == 2) return "linear";
    return fmt::format("conv {}x{}", d[2], d[3]);
}

}  // namespace

Result<std::string> describe_lora_file(const std::string& path) {
    NB_TRY(f, lora::LoraFile::open(path));
    std::map<int64_t, int> ranks;
    std::map<std::string, int> alphas, unet_kinds, te_kinds;
    bool peft = false;
    for (const auto& m : f.modules) {
        ++ranks[m.rank];
        ++alphas[m.alpha ? fmt::format("{:g}", *m.alpha) : std::string("none (= rank)")];
        ++(m.text_encoder() ? te_kinds : unet_kinds)[module_kind(m)];
        peft = peft || m.up.name.ends_with(".lora_B.weight");
    }
    auto kinds = [](const std::map<std::string, int>& k) {
        std::string s;
        for (const auto& [kind, n] : k) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", n, kind);
        return s.empty() ? std::string("none") : s;
    };
    int n_unet = 0, n_te = 0;
    for (const auto& [k, n] : unet_kinds) n_unet += n;
    for (const auto& [k, n] : te_kinds) n_te += n;
    std::string s =
        fmt::format("format: LoRA ({})\nmodules: {} (unet {}: {}; text encoder {}: {})\nrank: {}\nalpha: {}",
                    peft ? "diffusers/PEFT names" : "kohya", f.modules.size(), n_unet, kinds(unet_kinds),
                    n_te, kinds(te_kinds), counts(ranks), counts(alphas));
    if (!f.unrecognised_keys.empty())
        s += fmt::format("\nunrecognised tensors: {} (first: {})", f.unrecognised_keys.size(),
                         f.unrecognised_keys[0]);
    NB_TRY(hash, addnet_hash(path));
    s += "\naddnet hash: " + hash.substr(0, 12);
    bool header = false;
    for (const auto& [k, v] : f.metadata) {
        if (!k.starts_with("ss_")) continue;
        if (!header) s += "\ntraining metadata:";
        header = true;
        s += fmt::format("\n  {}: {}", k,
                         v.size() > kMaxMetadataValue ? v.substr(0, kMaxMetadataValue) + "..." : v);
    }
    return s;
}

}  // namespace pipeline

bool is_lora_file(const std::string& path) {
    if (!path.ends_with(".safetensors")) return false;
    auto st = SafeTensors::open(path);
    return st && lora::is_lora(*st);
}

Result<std::string> describe_lora(const std::string& path) {
    return pipeline::describe_lora_file(path);
}

}  // namespace nb
