// LoraState: merge a LoRA set into the weights with a per-tensor backup (see lora.h).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "backend/weights.h"
#include "models/lora/lora.h"

namespace nb::lora {

namespace {

constexpr size_t kWarnNames = 5;  // unmatched module names listed in a warning

bool is_text_encoder_key(const std::string& key) {
    return key.starts_with("cond_stage_model.") || key.starts_with("conditioner.");  // SD 1.x / 2.x, SDXL
}

std::string unmatched_warning(const LoraFile& f, const std::vector<std::string>& names, const char* what) {
    std::string list;
    for (size_t i = 0; i < std::min(names.size(), kWarnNames); ++i) list += (i ? ", " : "") + names[i];
    if (names.size() > kWarnNames) list += ", ...";
    return fmt::format("LoRA '{}': {} {} ignored: {}", f.name, names.size(), what, list);
}

}  // namespace

void LoraState::restore(std::map<std::string, Tensor>& weights) {
    for (auto& [key, base] : backup_) {
        auto it = weights.find(key);
        if (it == weights.end()) continue;  // weights map replaced; nothing to restore into
        ops::ensure_values(it->second);  // bf16 mode keeps only a packed copy of merged weights
        std::memcpy(it->second.data(), base.data(), size_t(base.numel()) * sizeof(float));
        ops::weights_changed(it->second);
    }
    backup_.clear();
    applied_.clear();
    warnings_.clear();
}

Result<std::vector<std::string>> LoraState::merge(std::map<std::string, Tensor>& weights, const LoraUse& use,
                                                  const TargetIndex& index) {
    const LoraFile& f = *use.file;
    // Resolve and shape-check every module first, so a file that does not fit changes nothing.
    struct Target {
        const LoraModule* m;
        std::string key;
        float mult;
        int rows = -1;  // >= 0: the delta goes to row block `rows` (q 0, k 1, v 2) of a fused in_proj_weight
    };
    std::vector<Target> targets;
    std::vector<std::string> unmatched, partial;
    // open_clip attentions: A1111 merges q, k, v (into in_proj_weight) and out_proj only when the file has all
    // four for that attention (networks.py, the MultiheadAttention branch); otherwise none of them.
    std::map<std::string, std::array<std::pair<const LoraModule*, std::string>, 4>> attentions;
    auto add = [&](const LoraModule& m, const std::string& key, const Shape& fit, int rows) -> Result<void> {
        const float mult = is_text_encoder_key(key) ? use.te_weight : use.unet_weight;
        if (mult == 0.f) return {};  // weight 0 is a no-op (A1111 would add exact zeros)
        if (auto r = check_fit(m, fit, fmt::format("{}: weight '{}'", f.path, key)); !r) return std::unexpected(r.error());
        targets.push_back({&m, key, mult, rows});
        return {};
    };
    for (const auto& m : f.modules) {
        if (auto fz = index.fused(m.name)) {
            attentions[fz->attention][size_t(fz->part)] = {&m, fz->key};
            continue;
        }
        auto key = index.find(m.name);
        if (!key) {
            unmatched.push_back(m.name);
            continue;
        }
        if (auto r = add(m, *key, weights.at(*key).shape(), -1); !r) return std::unexpected(r.error());
    }
    for (const auto& [attention, parts] : attentions) {
        if (!std::ranges::all_of(parts, [](const auto& p) { return p.first != nullptr; })) {
            for (const auto& [m, key] : parts)
                if (m) partial.push_back(m->name);
            continue;
        }
        const Shape& in_proj = weights.at(parts[0].second).shape();
        if (in_proj.size() != 2 || in_proj[0] % 3)
            return make_error(Errc::shape, "{}: weight '{}' is {}, not a fused [3C, C] attention projection", f.path,
                              parts[0].second, shape_str(in_proj));
        for (int p = 0; p < 4; ++p) {
            const auto& [m, key] = parts[size_t(p)];
            const Shape fit = p < 3 ? Shape{in_proj[0] / 3, in_proj[1]} : weights.at(key).shape();
            if (auto r = add(*m, key, fit, p < 3 ? p : -1); !r) return std::unexpected(r.error());
        }
    }
    if (targets.empty() && unmatched.size() == f.modules.size())
        return make_error(Errc::shape,
                          "{}: no LoRA module matches this model (wrong base architecture?), first: '{}'",
                          f.path, unmatched[0]);
    for (const auto& t : targets) {
        Tensor& w = weights.at(t.key);
        const int64_t block = t.rows < 0 ? w.numel() : w.numel() / 3;
        const Shape fit = t.rows < 0 ? w.shape() : Shape{w.shape()[0] / 3, w.shape()[1]};
        NB_TRY(delta, module_delta(*t.m, fit, t.mult, f.path));
        ops::ensure_values(w);
        if (!backup_.contains(t.key)) backup_.emplace(t.key, w.clone());
        float* dst = w.data() + (t.rows < 0 ? 0 : t.rows * block);
        const float* src = delta.data();
        for (int64_t i = 0; i < block; ++i) dst[i] += src[i];
        ops::weights_changed(w);
    }
    std::vector<std::string> warnings;
    if (!unmatched.empty())
        warnings.push_back(unmatched_warning(f, unmatched, "modules match no model weight and are"));
    if (!partial.empty())
        warnings.push_back(unmatched_warning(
            f, partial, "modules of fused text-encoder attentions without all of q/k/v/out_proj (A1111 merges "
                        "those only together) are"));
    if (!f.unrecognised_keys.empty())
        warnings.push_back(unmatched_warning(f, f.unrecognised_keys, "tensors are not LoRA tensors and are"));
    return warnings;
}

Result<std::vector<std::string>> LoraState::apply(std::map<std::string, Tensor>& weights,
                                                  const std::vector<LoraUse>& set) {
    std::vector<std::tuple<std::string, float, float>> wanted;
    for (const auto& u : set) wanted.emplace_back(u.file->path, u.te_weight, u.unet_weight);
    if (wanted == applied_) return warnings_;
    restore(weights);
    const TargetIndex index(weights);
    std::vector<std::string> warnings;
    for (const auto& u : set) {
        auto w = merge(weights, u, index);
        if (!w) {
            restore(weights);
            return std::unexpected(w.error());
        }
        warnings.insert(warnings.end(), w->begin(), w->end());
    }
    applied_ = std::move(wanted);
    warnings_ = warnings;
    return warnings;
}

}  // namespace nb::lora
