#include "models/lora/name_map.h"

#include <algorithm>
#include <regex>
#include <vector>

namespace nb::lora {

namespace {

// A1111 convert_diffusers_name_to_compvis, restated as (pattern, template) rows; first full match wins.
// Template placeholders: {$N} = capture N; {res:$N} = capture N through kResnetSuffix; any other {...} is a
// sum of terms K, $N or K*$N (capture N read as an integer). A1111's conditionals ("1 if attentions else 0",
// "2 if i > 0 else 1") are split into separate rows. The 3 = num_res_blocks + 1 of SD1/SD2, hard-coded in
// A1111.
struct Rule {
    const char* pattern;
    const char* tmpl;
};
constexpr Rule kRules[] = {
    {R"(lora_unet_conv_in(.*))", "diffusion_model_input_blocks_0_0{$1}"},
    {R"(lora_unet_conv_out(.*))", "diffusion_model_out_2{$1}"},
    {R"(lora_unet_time_embedding_linear_(\d+)(.*))", "diffusion_model_time_embed_{2*$1-2}{$2}"},
    {R"(lora_unet_down_blocks_(\d+)_attentions_(\d+)_(.+))",
     "diffusion_model_input_blocks_{1+3*$1+$2}_1_{$3}"},
    {R"(lora_unet_down_blocks_(\d+)_resnets_(\d+)_(.+))",
     "diffusion_model_input_blocks_{1+3*$1+$2}_0_{res:$3}"},
    {R"(lora_unet_mid_block_attentions_(\d+)_(.+))", "diffusion_model_middle_block_1_{$2}"},
    {R"(lora_unet_mid_block_resnets_(\d+)_(.+))", "diffusion_model_middle_block_{2*$1}_{res:$2}"},
    {R"(lora_unet_up_blocks_(\d+)_attentions_(\d+)_(.+))", "diffusion_model_output_blocks_{3*$1+$2}_1_{$3}"},
    {R"(lora_unet_up_blocks_(\d+)_resnets_(\d+)_(.+))", "diffusion_model_output_blocks_{3*$1+$2}_0_{res:$3}"},
    {R"(lora_unet_down_blocks_(\d+)_downsamplers_0_conv)", "diffusion_model_input_blocks_{3+3*$1}_0_op"},
    {R"(lora_unet_up_blocks_0_upsamplers_0_conv)", "diffusion_model_output_blocks_2_1_conv"},
    {R"(lora_unet_up_blocks_(\d+)_upsamplers_0_conv)", "diffusion_model_output_blocks_{2+3*$1}_2_conv"},
    {R"(lora_te_text_model_encoder_layers_(\d+)_(.+))", "transformer_text_model_encoder_layers_{$1}_{$2}"},
    // SDXL's second tower (open_clip bigG, conditioner.embedders.1): HF names -> open_clip module names.
    // q/k/v_proj become "..._attn_q_proj", which names no weight: bigG's q, k and v are one fused in_proj.
    {R"(lora_te2_text_model_encoder_layers_(\d+)_mlp_fc1(.*))", "1_model_transformer_resblocks_{$1}_mlp_c_fc{$2}"},
    {R"(lora_te2_text_model_encoder_layers_(\d+)_mlp_fc2(.*))", "1_model_transformer_resblocks_{$1}_mlp_c_proj{$2}"},
    {R"(lora_te2_text_model_encoder_layers_(\d+)_self_attn_(.+))", "1_model_transformer_resblocks_{$1}_attn_{$2}"},
    {R"(lora_te2_text_model_encoder_layers_(\d+)_(.+))", "1_model_transformer_resblocks_{$1}_{$2}"},
};

// A1111 suffix_conversion["resnets"]: diffusers ResnetBlock2D child -> ldm ResBlock child.
constexpr std::pair<const char*, const char*> kResnetSuffix[] = {
    {"conv1", "in_layers_2"},  {"conv2", "out_layers_3"},         {"norm1", "in_layers_0"},
    {"norm2", "out_layers_0"}, {"time_emb_proj", "emb_layers_1"}, {"conv_shortcut", "skip_connection"},
};

// Diffusers/PEFT module-path prefixes -> kohya prefixes.
constexpr std::pair<const char*, const char*> kDiffusersPrefix[] = {
    {"unet.", "lora_unet_"},
    {"text_encoder.", "lora_te_"},
};

int capture_index(std::string_view s) {
    return s.size() >= 2 && s[0] == '$' ? std::stoi(std::string(s.substr(1))) : -1;
}

// Sum of terms "K", "$N", "K*$N" separated by '+' / '-'.
long long eval_sum(std::string_view expr, const std::smatch& m) {
    long long total = 0;
    size_t i = 0;
    while (i < expr.size()) {
        int sign = 1;
        if (expr[i] == '+' || expr[i] == '-') sign = expr[i++] == '-' ? -1 : 1;
        const size_t end = expr.find_first_of("+-", i);
        const std::string_view term =
            expr.substr(i, end == std::string_view::npos ? expr.size() - i : end - i);
        const size_t star = term.find('*');
        long long v = 1;
        for (std::string_view f :
             {term.substr(0, star),
              star == std::string_view::npos ? std::string_view() : term.substr(star + 1)}) {
            if (f.empty()) continue;
            const int c = capture_index(f);
            v *= c >= 0 ? std::stoll(m[size_t(c)].str()) : std::stoll(std::string(f));
        }
        total += sign * v;
        i = end == std::string_view::npos ? expr.size() : end;
    }
    return total;
}

std::string expand(std::string_view tmpl, const std::smatch& m) {
    std::string out;
    for (size_t i = 0; i < tmpl.size();) {
        if (tmpl[i] != '{') {
            out += tmpl[i++];
            continue;
        }
        const size_t close = tmpl.find('}', i);
        const std::string_view ph = tmpl.substr(i + 1, close - i - 1);
        i = close + 1;
        if (int c = capture_index(ph); c >= 0 && ph.find_first_of("+-*") == std::string_view::npos) {
            out += m[size_t(c)].str();
        } else if (ph.starts_with("res:")) {
            std::string s = m[size_t(capture_index(ph.substr(4)))].str();
            for (auto [from, to] : kResnetSuffix)
                if (s == from) s = to;
            out += s;
        } else {
            out += std::to_string(eval_sum(ph, m));
        }
    }
    return out;
}

}  // namespace

std::optional<std::string> diffusers_to_kohya(std::string_view module) {
    if (module.starts_with("base_model.model.")) module.remove_prefix(17);
    for (auto [from, to] : kDiffusersPrefix) {
        if (!module.starts_with(from)) continue;
        std::string s = std::string(to) + std::string(module.substr(std::string_view(from).size()));
        std::replace(s.begin() + std::string_view(to).size(), s.end(), '.', '_');
        return s;
    }
    return std::nullopt;
}

std::optional<std::string> kohya_to_compvis(std::string_view kohya) {
    static const std::vector<std::regex> compiled = [] {
        std::vector<std::regex> v;
        for (const auto& r : kRules) v.emplace_back(r.pattern);
        return v;
    }();
    // Real module names are under 150 characters; std::regex's matcher recurses per character, so a stranger's
    // LoRA with a name of hundreds of KB would overflow the stack instead of matching nothing.
    if (kohya.size() > 1024) return std::nullopt;
    const std::string s(kohya);
    std::smatch m;
    for (size_t i = 0; i < compiled.size(); ++i)
        if (std::regex_match(s, m, compiled[i])) return expand(kRules[i].tmpl, m);
    return std::nullopt;
}

TargetIndex::TargetIndex(const std::map<std::string, Tensor>& weights) {
    // LDM key prefix -> the part A1111's module names drop (sd_model.model / cond_stage_model.wrapped roots;
    // SDXL: conditioner.embedders, whose modules A1111 names "<embedder index>_<module>").
    constexpr std::string_view kRoots[] = {"model.", "cond_stage_model.", "conditioner.embedders."};
    constexpr std::string_view kSuffix = ".weight", kInProj = ".in_proj_weight";
    for (const auto& [key, t] : weights) {
        const bool in_proj = key.ends_with(kInProj);
        if (!key.ends_with(kSuffix) && !in_proj) continue;
        for (std::string_view root : kRoots) {
            if (!key.starts_with(root)) continue;
            const size_t cut = (in_proj ? kInProj : kSuffix).size();
            std::string name = key.substr(root.size(), key.size() - root.size() - cut);
            std::replace(name.begin(), name.end(), '.', '_');
            (in_proj ? in_proj_ : by_module_).emplace(std::move(name), key);
            break;
        }
    }
}

std::vector<std::string> TargetIndex::candidates(std::string_view kohya) const {
    std::vector<std::string> names;
    if (auto compvis = kohya_to_compvis(kohya)) names.push_back(*compvis);
    // A1111's SD 2.x branch of convert_diffusers_name_to_compvis: the HF names of an SD 2.x LoRA's text encoder
    // become open_clip's (mlp_fc1 -> mlp_c_fc, mlp_fc2 -> mlp_c_proj, self_attn -> attn), the rules of SDXL's
    // second tower without its embedder index.
    constexpr std::string_view kTe = "lora_te_text_model_encoder_layers_";
    if (kohya.starts_with(kTe))
        if (auto open_clip = kohya_to_compvis("lora_te2_" + std::string(kohya.substr(8))); open_clip &&
                                                                                           open_clip->starts_with("1_"))
            names.push_back(open_clip->substr(2));
    // A1111's fallback for files already named after the LDM modules (SDXL LoRAs, LoRAs trained on an LDM
    // UNet): "lora_unet_input_blocks_1_1_proj_in" -> "diffusion_model_input_blocks_1_1_proj_in".
    constexpr std::string_view kUnet = "lora_unet_";
    if (kohya.starts_with(kUnet)) names.push_back("diffusion_model_" + std::string(kohya.substr(kUnet.size())));
    // ... and for SDXL's first tower: "lora_te1_text_model_X" -> "0_transformer_text_model_X".
    constexpr std::string_view kTe1 = "lora_te1_text_model_";
    if (kohya.starts_with(kTe1)) names.push_back("0_transformer_text_model_" + std::string(kohya.substr(kTe1.size())));
    return names;
}

std::optional<std::string> TargetIndex::find(std::string_view kohya) const {
    for (const auto& name : candidates(kohya))
        if (auto it = by_module_.find(name); it != by_module_.end()) return it->second;
    return std::nullopt;
}

std::optional<TargetIndex::Fused> TargetIndex::fused(std::string_view kohya) const {
    if (in_proj_.empty()) return std::nullopt;
    constexpr std::string_view kParts[] = {"_q_proj", "_k_proj", "_v_proj", "_out_proj"};
    for (const auto& name : candidates(kohya))
        for (int part = 0; part < 4; ++part) {
            if (!name.ends_with(kParts[part])) continue;
            const std::string attention = name.substr(0, name.size() - kParts[part].size());
            auto it = in_proj_.find(attention);
            if (it == in_proj_.end()) continue;
            if (part < 3) return Fused{attention, it->second, part};
            if (auto out = by_module_.find(name); out != by_module_.end()) return Fused{attention, out->second, 3};
        }
    return std::nullopt;
}

}  // namespace nb::lora
