// Model families: what a checkpoint is (SD 1.x, SD 2.x, SDXL, and their 9-channel inpainting variants), found
// from the tensors present (never the file name), and a preset per family for what tensor shapes cannot tell:
// the text encoders, the VAE latent scale, the default prediction type and the default picture size.
// The prediction type is then decided per checkpoint (decide_prediction): an explicit option, else the file's
// metadata, else, for SD 2.x, A1111's test forward.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/nn/binder.h"

namespace nb::unet {
class UNet;
}

namespace nb::pipeline {

// Unique tensor prefixes of the components in the LDM (SD 1.x / 2.x) and sgm (SDXL) single-file layouts.
inline constexpr const char* kClipPrefix = "cond_stage_model.transformer.text_model.";
inline constexpr const char* kOpenClipPrefix = "cond_stage_model.model.";  // ldm FrozenOpenCLIPEmbedder
inline constexpr const char* kUNetPrefix = "model.diffusion_model.";
inline constexpr const char* kVAEPrefix = "first_stage_model.";
inline constexpr const char* kSDXLClipPrefix = "conditioner.embedders.0.transformer.text_model.";
inline constexpr const char* kSDXLOpenClipPrefix = "conditioner.embedders.1.model.";  // FrozenOpenCLIPEmbedder2

enum class ModelFamily { sd1, sd1_inpaint, sd2, sd2_inpaint, sdxl, sdxl_inpaint };

enum class Prediction { eps, v };

// Where the prediction type of a loaded model came from.
enum class PredictionSource {
    preset,        // the family's default (nothing else said)
    metadata,      // the file's `parameterization` metadata
    test_forward,  // A1111's SD 2.x check (is_using_v_parameterization_for_sd2)
    option,        // LoadOptions::prediction / --prediction
};

// A text tower architecture.
enum class TextEncoderKind {
    clip,       // OpenAI CLIP ViT-L/14 (HF CLIPTextModel names)
    open_clip,  // open_clip: ViT-H/14 (SD 2.x, conditioning = penultimate layer), ViT-bigG/14 (SDXL)
};

struct TextEncoderSpec {
    TextEncoderKind kind;
    const char* name;    // "CLIP ViT-L/14", ...
    const char* prefix;  // tensor prefix in the LDM / sgm single-file layout
    bool pooled;         // its pooled (projected) output conditions the UNet too (SDXL's bigG)
};

struct FamilyPreset {
    ModelFamily family;
    const char* name;  // "SD 1.x", "SD 1.x inpainting", ...
    std::span<const TextEncoderSpec> text_encoders;
    float vae_scale;             // latents the sampler sees = vae_scale * z (ldm / sgm scale_factor)
    Prediction prediction;       // when neither the option, the metadata nor a test forward decides
    int default_size;            // txt2img side in pixels for eps models ...
    int default_size_v;          // ... and for v-prediction ones (SD 2.x 768-v)
    bool inpaint;                // 9-channel UNet: latent + mask + masked-image latent
    bool supported;              // this engine can load it
    const char* unsupported_why;  // the one-line error when not supported
};

const FamilyPreset& preset(ModelFamily f);
std::span<const FamilyPreset> family_presets();
int default_size(const FamilyPreset& p, Prediction pred);

const char* prediction_name(Prediction p);     // "eps", "v"
const char* source_name(PredictionSource s);  // "family default", "metadata", "test forward", "option"
// "auto" (or "") -> nullopt, "eps" / "v" -> that; anything else: Errc::invalid_argument naming `field`.
Result<std::optional<Prediction>> parse_prediction(std::string_view name, std::string_view field = "prediction");

// From the tensors present only. SDXL: sgm's second text embedder or the UNet's label embedding (SDXL's
// pooled-text + size conditioning); SD 2.x: the ldm open_clip tower; inpainting: the UNet's input conv takes 9
// channels. Anything else (including files without a recognisable UNet) is SD 1.x, whose loader then says what
// is missing.
ModelFamily detect_family(const nn::TensorLookup& lookup);
// A diffusers SD 2.x folder: its text encoder in HF CLIPTextModel naming (diffusers converts open_clip's ViT-H, and
// keeps only the 23 layers up to the penultimate one that SD 2.x conditions on) under kClipPrefix, beside a UNet
// whose transformers project with Linear layers (SD 2.x's use_linear_in_transformer). detect_family calls it SD 2.x.
bool sd2_hf_text_encoder(const nn::TensorLookup& lookup);

// The prediction type and where it came from, in this order: `option` (when set), the metadata
// `parameterization` ("v" -> v, "eps" -> eps; other values are ignored), then for SD 2.x non-inpainting models
// A1111's test forward: nullopt means only that can tell (test_forward_prediction). Otherwise the family's
// default (A1111 tests only SD 2.x non-inpainting UNets; the SD 1.x and inpainting configs are always eps).
struct PredictionChoice {
    Prediction prediction;
    PredictionSource source;
};
std::optional<PredictionChoice> decide_prediction(ModelFamily f, std::optional<Prediction> option,
                                                  const std::map<std::string, std::string>& metadata);
PredictionChoice test_forward_prediction(const unet::UNet& unet);

// A1111 sd_models_config.is_using_v_parameterization_for_sd2: the UNet on x = 0.5 everywhere [1, 4, 8, 8] at
// timestep 999 with a context of 0.5 everywhere [1, 2, context_dim] in fp32; returns mean(unet(x) - x).
// A1111's rule: v-prediction iff that mean is below kTestForwardThreshold (an empirical split: at the last
// timestep a v model's output leans strongly negative on this input, an eps model's stays near noise).
double test_forward_mean(const unet::UNet& unet);
inline constexpr double kTestForwardThreshold = -1.0;

}  // namespace nb::pipeline
