#include "io/diffusers_names.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace nb::diffusers {

namespace {

using enum Part;

// Sources: diffusers scripts/convert_original_stable_diffusion_to_diffusers.py name correspondences and the
// LDM module trees (openaimodel.py UNetModel, model.py Encoder/Decoder), re-stated as a table.
constexpr BlockRule kBlockRules[] = {
    {text_encoder, "text_model.", "text_model.", Ix::same, Inner::keep},

    {unet, "time_embedding.linear_1.", "time_embed.0.", Ix::same, Inner::keep},
    {unet, "time_embedding.linear_2.", "time_embed.2.", Ix::same, Inner::keep},
    {unet, "add_embedding.linear_1.", "label_emb.0.0.", Ix::same, Inner::keep},
    {unet, "add_embedding.linear_2.", "label_emb.0.2.", Ix::same, Inner::keep},
    {unet, "conv_in.", "input_blocks.0.0.", Ix::same, Inner::keep},
    {unet, "down_blocks.$.resnets.$.", "input_blocks.$.0.", Ix::unet_in_res, Inner::unet_resnet},
    {unet, "down_blocks.$.attentions.$.", "input_blocks.$.1.", Ix::unet_in_res, Inner::keep},
    {unet, "down_blocks.$.downsamplers.0.conv.", "input_blocks.$.0.op.", Ix::unet_in_down, Inner::keep},
    {unet, "mid_block.resnets.$.", "middle_block.$.", Ix::mid_res, Inner::unet_resnet},
    {unet, "mid_block.attentions.0.", "middle_block.1.", Ix::same, Inner::keep},
    {unet, "up_blocks.$.resnets.$.", "output_blocks.$.0.", Ix::unet_out, Inner::unet_resnet},
    {unet, "up_blocks.$.attentions.$.", "output_blocks.$.1.", Ix::unet_out, Inner::keep},
    {unet, "up_blocks.$.upsamplers.0.conv.", "output_blocks.$.$.conv.", Ix::unet_out_up, Inner::keep},
    {unet, "conv_norm_out.", "out.0.", Ix::same, Inner::keep},
    {unet, "conv_out.", "out.2.", Ix::same, Inner::keep},

    {vae, "encoder.conv_in.", "encoder.conv_in.", Ix::same, Inner::keep},
    {vae, "encoder.down_blocks.$.resnets.$.", "encoder.down.$.block.$.", Ix::same, Inner::vae_resnet},
    {vae, "encoder.down_blocks.$.downsamplers.0.conv.", "encoder.down.$.downsample.conv.", Ix::same, Inner::keep},
    {vae, "encoder.mid_block.resnets.$.", "encoder.mid.block_$.", Ix::plus1, Inner::vae_resnet},
    {vae, "encoder.mid_block.attentions.0.", "encoder.mid.attn_1.", Ix::same, Inner::vae_attention},
    {vae, "encoder.conv_norm_out.", "encoder.norm_out.", Ix::same, Inner::keep},
    {vae, "encoder.conv_out.", "encoder.conv_out.", Ix::same, Inner::keep},
    {vae, "decoder.conv_in.", "decoder.conv_in.", Ix::same, Inner::keep},
    {vae, "decoder.mid_block.resnets.$.", "decoder.mid.block_$.", Ix::plus1, Inner::vae_resnet},
    {vae, "decoder.mid_block.attentions.0.", "decoder.mid.attn_1.", Ix::same, Inner::vae_attention},
    {vae, "decoder.up_blocks.$.resnets.$.", "decoder.up.$.block.$.", Ix::vae_rev, Inner::vae_resnet},
    {vae, "decoder.up_blocks.$.upsamplers.0.conv.", "decoder.up.$.upsample.conv.", Ix::vae_rev, Inner::keep},
    {vae, "decoder.conv_norm_out.", "decoder.norm_out.", Ix::same, Inner::keep},
    {vae, "decoder.conv_out.", "decoder.conv_out.", Ix::same, Inner::keep},
    {vae, "quant_conv.", "quant_conv.", Ix::same, Inner::keep},
    {vae, "post_quant_conv.", "post_quant_conv.", Ix::same, Inner::keep},
};

// Inner names; the first row of a pair is the current diffusers spelling, the second the legacy one.
constexpr InnerRule kInnerRules[] = {
    {Inner::unet_resnet, "norm1", "in_layers.0", false},
    {Inner::unet_resnet, "conv1", "in_layers.2", false},
    {Inner::unet_resnet, "time_emb_proj", "emb_layers.1", false},
    {Inner::unet_resnet, "norm2", "out_layers.0", false},
    {Inner::unet_resnet, "conv2", "out_layers.3", false},
    {Inner::unet_resnet, "conv_shortcut", "skip_connection", false},

    {Inner::vae_resnet, "norm1", "norm1", false},
    {Inner::vae_resnet, "conv1", "conv1", false},
    {Inner::vae_resnet, "norm2", "norm2", false},
    {Inner::vae_resnet, "conv2", "conv2", false},
    {Inner::vae_resnet, "conv_shortcut", "nin_shortcut", false},

    {Inner::vae_attention, "group_norm", "norm", false},
    {Inner::vae_attention, "to_q", "q", true},
    {Inner::vae_attention, "query", "q", true},
    {Inner::vae_attention, "to_k", "k", true},
    {Inner::vae_attention, "key", "k", true},
    {Inner::vae_attention, "to_v", "v", true},
    {Inner::vae_attention, "value", "v", true},
    {Inner::vae_attention, "to_out.0", "proj_out", true},
    {Inner::vae_attention, "proj_attn", "proj_out", true},
};

// Largest value of capture `which` among keys matching `tmpl` (with `fixed0` for capture 0 when >= 0).
int max_capture(std::span<const std::string> keys, std::string_view tmpl, size_t which, int fixed0 = -1) {
    int best = -1;
    for (const auto& k : keys) {
        size_t used = 0;
        auto c = match_template(tmpl, k, used);
        if (c && c->size() > which && (fixed0 < 0 || (*c)[0] == fixed0)) best = std::max(best, (*c)[which]);
    }
    return best;
}

std::optional<std::string> rename_inner(Inner kind, std::string_view rest, bool& conv1x1) {
    conv1x1 = false;
    if (kind == Inner::keep) return std::string(rest);
    for (const auto& r : kInnerRules) {
        if (r.kind != kind || !rest.starts_with(r.from) || rest.size() <= r.from.size() || rest[r.from.size()] != '.')
            continue;
        conv1x1 = r.linear_as_conv1x1 && rest.ends_with(".weight");
        return std::string(r.to) + std::string(rest.substr(r.from.size()));
    }
    return std::nullopt;
}

}  // namespace

namespace {
constexpr int kMaxIndex = 99999;  // larger block indices match no rule (no model has them)
constexpr int kMaxBlocks = 64;    // levels / resnets per level a layout may have
}  // namespace

std::string_view ldm_prefix(Part p) {
    switch (p) {
        case Part::text_encoder: return "cond_stage_model.transformer.";
        case Part::unet: return "model.diffusion_model.";
        case Part::vae: return "first_stage_model.";
    }
    return "";
}

std::span<const BlockRule> block_rules() { return kBlockRules; }
std::span<const InnerRule> inner_rules() { return kInnerRules; }

std::optional<std::vector<int>> match_template(std::string_view tmpl, std::string_view key, size_t& consumed) {
    std::vector<int> caps;
    size_t k = 0;
    for (char c : tmpl) {
        if (c != '$') {
            if (k >= key.size() || key[k] != c) return std::nullopt;
            ++k;
            continue;
        }
        int v = 0;
        auto [p, ec] = std::from_chars(key.data() + k, key.data() + key.size(), v);
        if (ec != std::errc() || v < 0 || v > kMaxIndex) return std::nullopt;
        k = size_t(p - key.data());
        caps.push_back(v);
    }
    consumed = k;
    return caps;
}

std::string fill_template(std::string_view tmpl, std::span<const int> values) {
    std::string out;
    size_t i = 0;
    for (char c : tmpl) {
        if (c == '$') out += i < values.size() ? std::to_string(values[i++]) : "?";
        else out.push_back(c);
    }
    return out;
}

Result<Layout> detect_layout(std::span<const std::string> unet_keys, std::span<const std::string> vae_keys) {
    Layout l;
    l.unet_res_per_level = max_capture(unet_keys, "down_blocks.$.resnets.$.", 1) + 1;
    int n_up = max_capture(unet_keys, "up_blocks.$.", 0) + 1;
    // Real UNets have 3-4 levels of 1-3 resnets, VAEs 4 levels: a folder naming block 1000 is not a model (and
    // its counts would overflow the index arithmetic below).
    l.vae_up_levels = max_capture(vae_keys, "decoder.up_blocks.$.", 0) + 1;
    for (auto [what, n] : {std::pair{"unet down_blocks.*.resnets", l.unet_res_per_level}, {"unet up_blocks", n_up},
                           {"vae decoder.up_blocks", l.vae_up_levels}})
        if (n > kMaxBlocks)
            return make_error(Errc::format, "diffusers {}: {} of them (more than {}: not a known model layout)", what,
                              n, kMaxBlocks);
    for (int i = 0; i < n_up; ++i) {
        int up_res = max_capture(unet_keys, "up_blocks.$.resnets.$.", 1, i) + 1;
        if (up_res != l.unet_res_per_level + 1)
            return make_error(Errc::format, "diffusers unet: up_blocks.{} has {} resnets, expected {} (down levels "
                              "have {})", i, up_res, l.unet_res_per_level + 1, l.unet_res_per_level);
        l.unet_up_has_attn.push_back(max_capture(unet_keys, "up_blocks.$.attentions.", 0, i) >= 0);
    }
    return l;
}

std::optional<std::vector<int>> apply_index(Ix ix, std::span<const int> c, const Layout& l) {
    const int L = l.unet_res_per_level;
    auto need = [&](size_t n) { return c.size() == n; };
    switch (ix) {
        case Ix::same: return std::vector<int>(c.begin(), c.end());
        case Ix::unet_in_res:
            if (!need(2) || c[1] >= L) return std::nullopt;
            return std::vector<int>{(L + 1) * c[0] + c[1] + 1};
        case Ix::unet_in_down:
            if (!need(1)) return std::nullopt;
            return std::vector<int>{(L + 1) * (c[0] + 1)};
        case Ix::unet_out:
            if (!need(2) || c[1] > L) return std::nullopt;
            return std::vector<int>{(L + 1) * c[0] + c[1]};
        case Ix::unet_out_up:
            if (!need(1) || size_t(c[0]) >= l.unet_up_has_attn.size()) return std::nullopt;
            return std::vector<int>{(L + 1) * c[0] + L, l.unet_up_has_attn[size_t(c[0])] ? 2 : 1};
        case Ix::mid_res:
            if (!need(1) || c[0] > 1) return std::nullopt;
            return std::vector<int>{2 * c[0]};
        case Ix::plus1:
            if (!need(1) || c[0] > 1) return std::nullopt;
            return std::vector<int>{c[0] + 1};
        case Ix::vae_rev: {
            if (c.empty() || c[0] >= l.vae_up_levels) return std::nullopt;
            std::vector<int> out(c.begin(), c.end());
            out[0] = l.vae_up_levels - 1 - c[0];
            return out;
        }
    }
    return std::nullopt;
}

std::optional<Renamed> to_ldm(Part part, std::string_view key, const Layout& layout) {
    for (const auto& r : kBlockRules) {
        if (r.part != part) continue;
        size_t used = 0;
        auto caps = match_template(r.from, key, used);
        if (!caps) continue;
        auto idx = apply_index(r.ix, *caps, layout);
        if (!idx) return std::nullopt;
        Renamed out;
        auto inner = rename_inner(r.inner, key.substr(used), out.linear_as_conv1x1);
        if (!inner) return std::nullopt;
        out.ldm = std::string(ldm_prefix(part)) + fill_template(r.to, *idx) + *inner;
        return out;
    }
    return std::nullopt;
}

}  // namespace nb::diffusers
