// Standalone VAE files made from a checkpoint's own VAE tensors ("first_stage_model.*"), as users find them: cut
// out with or without the prefix, in fp16 or fp32, renamed to diffusers names, or with some weights changed.
#pragma once

#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/safetensors.h"

namespace nb::test {

struct VaeCut {
    bool keep_prefix = true;      // "first_stage_model.encoder..." or "encoder..."
    bool fp32 = false;            // convert to F32 (the values stay the same)
    bool diffusers = false;       // diffusers names (keep_prefix ignored)
    bool legacy_attention = false;  // diffusers' older attention names (query/key/value/proj_attn)
    float perturb = 0.f;          // added to every value of the conv_out biases of encoder and decoder
};

// LDM VAE name (without prefix) -> diffusers AutoencoderKL name, written out independently of
// io/diffusers_names.cpp so that the test checks that table. `n_levels`: decoder up levels (reversed).
inline std::string diffusers_vae_name(const std::string& ldm, int n_levels, bool legacy, bool& linear) {
    std::smatch m;
    std::string s = ldm;
    linear = false;
    static const std::regex down_block(R"(^encoder\.down\.(\d+)\.block\.(\d+)\.(.*)$)");
    static const std::regex down_sample(R"(^encoder\.down\.(\d+)\.downsample\.conv\.(.*)$)");
    static const std::regex up_block(R"(^decoder\.up\.(\d+)\.block\.(\d+)\.(.*)$)");
    static const std::regex up_sample(R"(^decoder\.up\.(\d+)\.upsample\.conv\.(.*)$)");
    static const std::regex mid_block(R"(^(encoder|decoder)\.mid\.block_(\d)\.(.*)$)");
    static const std::regex mid_attn(R"(^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(.*)$)");
    static const std::regex norm_out(R"(^(encoder|decoder)\.norm_out\.(.*)$)");
    auto resnet = [](std::string rest) { return rest.starts_with("nin_shortcut.") ? "conv_shortcut." + rest.substr(13) : rest; };
    if (std::regex_match(ldm, m, down_block))
        s = "encoder.down_blocks." + m[1].str() + ".resnets." + m[2].str() + "." + resnet(m[3]);
    else if (std::regex_match(ldm, m, down_sample))
        s = "encoder.down_blocks." + m[1].str() + ".downsamplers.0.conv." + m[2].str();
    else if (std::regex_match(ldm, m, up_block))
        s = "decoder.up_blocks." + std::to_string(n_levels - 1 - std::stoi(m[1])) + ".resnets." + m[2].str() + "." +
            resnet(m[3]);
    else if (std::regex_match(ldm, m, up_sample))
        s = "decoder.up_blocks." + std::to_string(n_levels - 1 - std::stoi(m[1])) + ".upsamplers.0.conv." + m[2].str();
    else if (std::regex_match(ldm, m, mid_block))
        s = m[1].str() + ".mid_block.resnets." + std::to_string(std::stoi(m[2]) - 1) + "." + resnet(m[3]);
    else if (std::regex_match(ldm, m, mid_attn)) {
        const std::string part = m[2];
        std::string d = part == "norm" ? "group_norm" : part == "proj_out" ? (legacy ? "proj_attn" : "to_out.0")
                        : legacy ? (part == "q" ? "query" : part == "k" ? "key" : "value")
                                 : "to_" + part;
        linear = part != "norm";
        s = m[1].str() + ".mid_block.attentions.0." + d + "." + m[3].str();
    } else if (std::regex_match(ldm, m, norm_out))
        s = m[1].str() + ".conv_norm_out." + m[2].str();
    return s;
}

// Writes the VAE of `checkpoint` to `out` as `cut` says.
inline void write_vae_file(const std::string& checkpoint, const std::string& out, const VaeCut& cut = {}) {
    auto st = SafeTensors::open(checkpoint);
    ASSERT_TRUE(st) << st.error().message;
    const std::string prefix = "first_stage_model.";
    int n_levels = 0;
    for (const auto& e : st->entries())
        if (e.name.starts_with(prefix + "decoder.up.") && e.name.ends_with(".block.0.conv1.weight")) ++n_levels;
    std::vector<TensorToWrite> t;
    for (const auto& e : st->entries()) {
        if (!e.name.starts_with(prefix)) continue;
        const std::string ldm = e.name.substr(prefix.size());
        TensorToWrite w{cut.keep_prefix ? e.name : ldm, e.dtype_name, e.shape,
                        std::vector<uint8_t>(e.data, e.data + e.nbytes)};
        const bool bias = ldm == "encoder.conv_out.bias" || ldm == "decoder.conv_out.bias";
        if (cut.fp32 || (cut.perturb != 0.f && bias)) {
            auto f = entry_to_f32(e);
            ASSERT_TRUE(f) << f.error().message;
            std::vector<float> v(f->span().begin(), f->span().end());
            if (bias)
                for (float& x : v) x += cut.perturb;
            if (cut.fp32 || cut.perturb != 0.f) {  // F32 keeps the perturbed values exactly
                w.dtype = "F32";
                w.bytes.resize(v.size() * 4);
                std::memcpy(w.bytes.data(), v.data(), w.bytes.size());
            }
        }
        if (cut.diffusers) {
            bool linear = false;
            w.name = diffusers_vae_name(ldm, n_levels, cut.legacy_attention, linear);
            if (linear && w.shape.size() == 4) w.shape.resize(2);  // diffusers holds them as Linear [C, C]
        }
        t.push_back(std::move(w));
    }
    auto r = write_safetensors(out, t);
    ASSERT_TRUE(r) << r.error().message;
}

}  // namespace nb::test
