// Diffusers -> LDM single-file tensor names, as data (STYLE.md #8): a block table maps a diffusers block
// prefix ("down_blocks.$.resnets.$.") to its LDM prefix ("input_blocks.$.0.") through an index rule, then an
// inner table renames the rest inside that block kind (norm1 -> in_layers.0). '$' stands for one integer.
// Layout counts (resnets per level, levels, which up blocks have attention) come from the keys present.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace nb::diffusers {

enum class Part { text_encoder, unet, vae };
std::string_view ldm_prefix(Part p);  // "cond_stage_model.transformer.", "model.diffusion_model.", "first_stage_model."

// How the integers captured by a block rule's `from` become the integers of its `to` (L = resnets per down
// level of the UNet, N = number of VAE decoder levels).
enum class Ix {
    same,          // copy captures
    unet_in_res,   // (i, j) -> (L+1)*i + j + 1
    unet_in_down,  // (i)    -> (L+1)*(i+1)
    unet_out,      // (i, j) -> (L+1)*i + j          (up levels hold L+1 resnets)
    unet_out_up,   // (i)    -> ((L+1)*i + L, 2 if up level i has attentions else 1)
    mid_res,       // (j)    -> 2*j                  (middle_block: res, attn, res)
    plus1,         // (j)    -> j+1                  (VAE mid.block_1/2)
    vae_rev,       // (i, ...) -> (N-1-i, ...)       (VAE decoder up blocks are stored in reverse)
};

enum class Inner { keep, unet_resnet, vae_resnet, vae_attention };

struct BlockRule {
    Part part;
    std::string_view from, to;
    Ix ix;
    Inner inner;
};

struct InnerRule {
    Inner kind;
    std::string_view from, to;
    bool linear_as_conv1x1;  // diffusers Linear [C,C] is LDM 1x1 conv [C,C,1,1]
};

std::span<const BlockRule> block_rules();
std::span<const InnerRule> inner_rules();

struct Layout {
    int unet_res_per_level = 0;          // L; up levels have L+1
    std::vector<bool> unet_up_has_attn;  // per diffusers up_blocks index
    int vae_up_levels = 0;               // N
};

// Derives the layout from the diffusers keys of the unet and vae components (names relative to the folder).
Result<Layout> detect_layout(std::span<const std::string> unet_keys, std::span<const std::string> vae_keys);

// Applies an index rule; nullopt when the captures do not fit the layout.
std::optional<std::vector<int>> apply_index(Ix ix, std::span<const int> captures, const Layout& layout);

// '$'-template helpers shared with tests: match captures integers; fill substitutes them in order.
std::optional<std::vector<int>> match_template(std::string_view tmpl, std::string_view key, size_t& consumed);
std::string fill_template(std::string_view tmpl, std::span<const int> values);

struct Renamed {
    std::string ldm;             // full LDM name, prefix included
    bool linear_as_conv1x1 = false;
};

// nullopt: a key no rule knows (the store keeps it under its original name and lists it as unused).
std::optional<Renamed> to_ldm(Part part, std::string_view key, const Layout& layout);

}  // namespace nb::diffusers
