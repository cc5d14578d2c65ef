// LoRA module names -> checkpoint (LDM) weight keys, as A1111 extensions-builtin/Lora does it:
//   1. a file's module name is normalised to kohya form ("lora_unet_down_blocks_0_..."); diffusers/PEFT names
//      ("unet.down_blocks.0....", "text_encoder.text_model....") get the kohya prefix and '.' -> '_';
//   2. the kohya name is rewritten to the compvis module name with underscores
//   (convert_diffusers_name_to_compvis,
//      a rule table in name_map.cpp: data, not code), e.g. "diffusion_model_input_blocks_1_1_proj_in";
//   3. that name is looked up among the model's own weights with '.' -> '_' (TargetIndex), which resolves the
//      ambiguity of underscores exactly as A1111's network_layer_mapping does.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace nb::lora {

// A diffusers/PEFT module path ("unet.down_blocks.0.attentions.0.proj_in", optionally behind
// "base_model.model.") in kohya form ("lora_unet_down_blocks_0_attentions_0_proj_in"); nullopt when the
// prefix is neither unet nor text_encoder.
std::optional<std::string> diffusers_to_kohya(std::string_view module);

// convert_diffusers_name_to_compvis for SD1-style UNets and CLIP-L text encoders; nullopt when no rule
// matches. "lora_unet_down_blocks_1_resnets_0_conv1" -> "diffusion_model_input_blocks_4_0_in_layers_2".
std::optional<std::string> kohya_to_compvis(std::string_view kohya);

// The model's weights by underscore module name: "model.diffusion_model.X.Y.weight" -> "diffusion_model_X_Y",
// "cond_stage_model.transformer.text_model.X.weight" -> "transformer_text_model_X" (A1111 names modules of
// sd_model.model and cond_stage_model.wrapped the same way).
class TargetIndex {
  public:
    explicit TargetIndex(const std::map<std::string, Tensor>& weights);
    // Full LDM key of the weight a kohya module name targets, or nullopt. SD 2.x text-encoder modules
    // ("lora_te_text_model_encoder_layers_N_mlp_fc1") are looked up under open_clip's names too, as A1111 does
    // for an SD 2.x model ("model_transformer_resblocks_N_mlp_c_fc").
    std::optional<std::string> find(std::string_view kohya) const;

    // open_clip's attention (SD 2.x's text encoder, SDXL's bigG) is one torch MultiheadAttention: q, k and v are
    // the row blocks 0, 1, 2 of `in_proj_weight` [3C, C], and out_proj a Linear. A LoRA's q/k/v/out_proj module
    // of such an attention, or nullopt for any other module.
    struct Fused {
        std::string attention;  // module name of the attention ("model_transformer_resblocks_0_attn")
        std::string key;        // the in_proj_weight key (q, k, v) or the out_proj.weight key (out)
        int part = 0;           // 0 q, 1 k, 2 v, 3 out
    };
    std::optional<Fused> fused(std::string_view kohya) const;

  private:
    std::vector<std::string> candidates(std::string_view kohya) const;  // compvis module names to try
    std::unordered_map<std::string, std::string> by_module_;
    std::unordered_map<std::string, std::string> in_proj_;  // attention module name -> in_proj_weight key
};

}  // namespace nb::lora
