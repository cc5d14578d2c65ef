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
    // Full LDM key of the weight a kohya module name targets, or nullopt.
    std::optional<std::string> find(std::string_view kohya) const;

  private:
    std::unordered_map<std::string, std::string> by_module_;
};

}  // namespace nb::lora
